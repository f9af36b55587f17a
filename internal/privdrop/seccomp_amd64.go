package privdrop

import "golang.org/x/sys/unix"

const (
	filterArch  = unix.AUDIT_ARCH_X86_64
	x32Bit      = true
	sysExecve   = unix.SYS_EXECVE
	sysExecveat = unix.SYS_EXECVEAT
)
