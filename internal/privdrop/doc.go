// Package privdrop starts child processes that hold no capabilities, checks
// that the current process holds none, and forbids the current process to
// start programs at all.
//
// Linux capabilities are a property of each thread, and a child inherits
// the state of the thread that forked it. Start therefore changes the state
// of one locked OS thread (ambient and inheritable sets cleared, bounding set
// emptied when it may be, no_new_privs when asked) and forks the child from
// that thread. The change cannot be undone, so the goroutine never unlocks
// the thread: when it returns, the Go runtime ends the thread and no other
// goroutine ever runs with its reduced state.
//
// Why each step:
//   - The ambient set is what lets a non-root process keep capabilities
//     across execve. A monitor run as an ordinary user with ambient
//     CAP_SETUID and CAP_SETGID would otherwise pass them to sendmail, and
//     anything sendmail runs could setuid(0). Clearing it on the forking
//     thread leaves the monitor's own effective set alone.
//   - The inheritable set feeds file capabilities at execve; a child never
//     needs it.
//   - The bounding set limits what the child could ever gain, even through
//     a set-user-ID root or file-capability program. Emptying it needs
//     CAP_SETPCAP; without it the set is left as it is (Result says so).
//   - no_new_privs makes execve ignore set-user-ID, set-group-ID and file
//     capabilities for good. The engine gets it; sendmail must not, since
//     Postfix's postdrop is set-group-ID.
//
// Decisions the design left open:
//   - The bounding set is dropped capability by capability from 0 up to the
//     first number the kernel does not know (EINVAL), so no table of
//     capability numbers is needed.
//   - Start returns an error, and starts nothing, when clearing the ambient
//     or inheritable set or setting no_new_privs fails: a child that might
//     keep capabilities is worse than no child.
//   - DenyExec answers execve and execveat with EPERM. A system call made
//     through another architecture's entry (the i386 int 0x80 gate of an
//     x86-64 process, or the x32 numbers) is also answered EPERM, since Go
//     never uses them and they would be a way around the filter. On an
//     architecture the filter does not know, DenyExec installs nothing and
//     returns ErrUnsupported; the caller logs a warning.
package privdrop
