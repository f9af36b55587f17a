//go:build !amd64 && !arm64

package privdrop

const (
	filterArch  = 0 // DenyExec returns ErrUnsupported
	x32Bit      = false
	sysExecve   = 0
	sysExecveat = 0
)
