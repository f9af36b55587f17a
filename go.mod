module mppd

go 1.26.0

require (
	github.com/msteinert/pam/v2 v2.1.0
	golang.org/x/term v0.48.0
)

require (
	github.com/pelletier/go-toml/v2 v2.4.3 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
