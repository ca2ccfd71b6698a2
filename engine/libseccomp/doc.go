// Package seccomp is berth's stand-in for github.com/seccomp/libseccomp-golang
// (go.mod replaces that module with this directory). It offers the part of
// the API that runc's libcontainer uses to build a seccomp filter, on
// libseccomp through cgo, and adds one thing: a filter compiled once can be
// handed to a later process, which then exports it without compiling.
//
// runc compiles the container's filter inside the container's init, right
// before the command's execve, where berth has no hook; with Docker's
// profile that costs libseccomp 10–15 ms of CPU in every container start,
// exec and health probe. So every call that builds a filter is also
// recorded as bytes. The supervisor runs runc's own InitSeccomp once per
// distinct profile under Capture, which keeps the record and the program
// libseccomp exported for it (and loads nothing). An init given that pair
// through Precompiled records its calls without calling libseccomp, and
// ExportBPF writes the stored program when the init's record is the same,
// byte for byte; otherwise the calls are replayed into libseccomp and it
// compiles as always. A filter built without a precompiled program calls
// libseccomp at each step, as the original library does, so errors come
// from the same call.
package seccomp
