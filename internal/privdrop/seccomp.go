package privdrop

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is what DenyExec returns on an architecture it has no
// system call numbers for. Nothing was installed.
var ErrUnsupported = errors.New("privdrop: no exec filter for this architecture")

// Offsets into struct seccomp_data.
const (
	offNR   = 0
	offArch = 4
)

// x32SyscallBit marks the x32 ABI's system call numbers on x86-64.
const x32SyscallBit = 0x40000000

// DenyExec installs, for every thread of the process, a seccomp filter that
// makes execve and execveat fail with EPERM. It cannot be removed. The
// process must have no_new_privs set (or hold CAP_SYS_ADMIN).
func DenyExec() error {
	if filterArch == 0 {
		return ErrUnsupported
	}
	prog := execFilter()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("privdrop: install the exec filter: %w", errno)
	}
	return nil
}

// execFilter is the classic BPF program DenyExec installs:
//
//	load arch; if arch != native: return EPERM
//	load nr;   if nr >= x32 bit (x86-64 only): return EPERM
//	           if nr == execve or nr == execveat: return EPERM
//	return allow
func execFilter() []unix.SockFilter {
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	var tests []unix.SockFilter
	if x32Bit {
		tests = append(tests, unix.SockFilter{Code: jge, K: x32SyscallBit})
	}
	tests = append(tests,
		unix.SockFilter{Code: jeq, K: uint32(sysExecve)},
		unix.SockFilter{Code: jeq, K: uint32(sysExecveat)})
	n := len(tests)
	// Layout: 0 load arch, 1 check arch, 2 load nr, 3..3+n-1 tests,
	// 3+n allow, 3+n+1 deny. A jump counts from the next instruction.
	p := []unix.SockFilter{
		{Code: ldAbs, K: offArch},
		{Code: jeq, K: filterArch, Jf: uint8(n + 2)}, // foreign arch: deny
		{Code: ldAbs, K: offNR},
	}
	for i, t := range tests {
		t.Jt = uint8(n - i) // past the remaining tests and allow, to deny
		p = append(p, t)
	}
	return append(p,
		unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)})
}
