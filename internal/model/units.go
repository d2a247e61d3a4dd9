package model

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written in documents as a Go duration string
// such as "90s", "15m" or "1h30m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Seconds returns the duration in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

// String prints the duration as a Go duration string.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("must be a duration such as \"90s\" or \"15m\", got %q", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText prints the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// MarshalJSON prints the duration as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Byte-size and rate helpers used across the project. Memory is given in MiB,
// disks in GiB, link and NIC rates in Mbit/s (decimal, as network gear is
// sold), dirty rates in MiB/s.
const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// MbpsToBytes converts a rate in Mbit/s to bytes per second.
func MbpsToBytes(mbps float64) float64 { return mbps * 1e6 / 8 }

// MiBToBytes converts MiB to bytes.
func MiBToBytes(mib float64) float64 { return mib * MiB }
