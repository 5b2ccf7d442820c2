package shm

// Options are what a caller's options ask of a mapping.
type Options struct {
	Flags  int  // extra mmap flags: MapPopulate
	Sealed bool // refuse a segment whose size a peer could change
}
