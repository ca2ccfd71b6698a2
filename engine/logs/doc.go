// Package logs captures container output and reads it back, in the
// format of Docker's json-file logging driver.
//
// The path of a line, from the container to the terminal:
//
//   - The engine creates two named FIFOs per container (MakeFIFOs) and gives
//     their write sides to the container as stdout and stderr (OpenFIFOWriter).
//   - The project's supervisor drains each FIFO with Capture into the
//     container's log File, one JSON object per line:
//     {"log":"hello\n","stream":"stdout","time":"2026-01-02T15:04:05.123456789Z"}.
//     The File rotates itself by size (Options, ParseOptions).
//   - A tty container has one terminal instead of the FIFOs; the supervisor
//     reads its master side with CaptureTerminal, split into entries the
//     same way (lines, and 16 KiB partial pieces of longer ones).
//   - `berth logs` reads the files straight from disk with Read (tail, since,
//     until, follow across rotations) and prints entries with a Prefixer.
//
// A supervisor that dies does not hurt the container: both sides hold the
// FIFO open read-write, so a write never meets a pipe without readers
// (no SIGPIPE) and a read never sees end-of-file; the next supervisor opens
// the same FIFOs and carries on where the pipe buffer stands. The kernel
// keeps a pipe's content only while some descriptor holds the FIFO open: if
// a container exits while no supervisor runs, what it left unread in the
// pipe (at most the pipe buffer, 64 KiB by default) is lost.
package logs
