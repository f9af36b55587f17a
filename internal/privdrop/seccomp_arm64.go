package privdrop

import "golang.org/x/sys/unix"

const (
	filterArch  = unix.AUDIT_ARCH_AARCH64
	x32Bit      = false
	sysExecve   = unix.SYS_EXECVE
	sysExecveat = unix.SYS_EXECVEAT
)
