package slots

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	s := New(2, 10*time.Millisecond)
	ctx := context.Background()
	for i := range 2 {
		if err := s.Acquire(ctx); err != nil {
			t.Fatalf("Acquire %d of 2 free slots: %v", i+1, err)
		}
	}
	if s.InUse() != 2 {
		t.Fatalf("InUse %d after two Acquires, want 2", s.InUse())
	}
	if err := s.Acquire(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("third Acquire: %v, want ErrBusy", err)
	}
	s.Release()
	if err := s.Acquire(ctx); err != nil {
		t.Fatalf("after a Release: %v", err)
	}
}

func TestAcquireWaitsForRelease(t *testing.T) {
	s := New(1, time.Hour)
	s.Acquire(context.Background())
	got := make(chan error)
	go func() { got <- s.Acquire(context.Background()) }()
	s.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a queued Acquire did not get the released slot")
	}
}

func TestAcquireContext(t *testing.T) {
	s := New(1, time.Hour)
	s.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
}
