package message

import "io"

// SourceReader reads a message from R and keeps the first read error
// other than io.EOF in Err. After a copy has failed, Err tells a failing
// source (standard input, the client, a staged file) from a failing
// destination (the queue, the disk, the network).
type SourceReader struct {
	R   io.Reader
	Err error
}

func (s *SourceReader) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF && s.Err == nil {
		s.Err = err
	}
	return n, err
}
