package alertsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
)

// File reads alert documents from a file or a directory: operators drop
// documents there, drills replay recorded ones. Files are read in name
// order; with an Interval the directory is then watched (polled) for new
// and changed files. In a directory only names ending in one of
// DocumentExtensions are read (a README beside the documents is not an
// alert), and names starting with "." are skipped, so a document written
// under a temporary name and then renamed is read whole.
type File struct {
	Common
	// Path is a file or a directory.
	Path string
	// Interval, if positive, is how often the path is checked for new or
	// changed files after the first reading; with 0, Run returns after
	// reading what is there.
	Interval time.Duration
	// Pace, if positive, replays the documents found at start at the pace
	// of their issue times, Pace times faster (1: as issued): a document
	// issued 3 s after the first is delivered 3 s/Pace after it. Documents
	// that arrive later are delivered at once.
	Pace float64

	seen map[string]string // path → size and modification time read
}

// Name implements Source.
func (s *File) Name() string { return "file " + s.Path }

// Check implements Checker: the path must exist.
func (s *File) Check() error {
	_, err := os.Stat(s.Path)
	return err
}

// Run implements Source. Without an Interval, a path that cannot be read
// ends it with the error; with one, the error is reported and the path
// read again after the interval.
func (s *File) Run(ctx context.Context, sink Sink) error {
	first := true
	for {
		if err := s.scan(ctx, sink, first && s.Pace > 0); err != nil {
			if isCanceled(ctx, err) {
				return ctx.Err()
			}
			if first && s.Interval <= 0 {
				return err // the caller reports it
			}
			s.fail(s.Name(), err)
		}
		first = false
		if s.Interval <= 0 {
			return nil
		}
		if err := sleep(ctx, s.clock(), s.Interval); err != nil {
			return err
		}
	}
}

// fileDoc is one document read.
type fileDoc struct {
	path   string
	alerts []*alert.Alert
}

// scan reads the files that are new or changed and delivers their alerts.
func (s *File) scan(ctx context.Context, sink Sink, pace bool) error {
	if s.seen == nil {
		s.seen = map[string]string{}
	}
	paths, err := s.list()
	if err != nil {
		return err
	}
	var docs []fileDoc
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			s.fail(s.Name(), err)
			continue
		}
		stamp := fmt.Sprintf("%d %d", st.Size(), st.ModTime().UnixNano())
		if s.seen[p] == stamp {
			continue
		}
		s.seen[p] = stamp
		data, err := readFile(p)
		if err != nil {
			s.fail(s.Name(), err)
			continue
		}
		alerts, err := alert.ParseAll(data)
		if err != nil {
			s.fail(s.Name(), fmt.Errorf("%s: %w", p, err))
			continue
		}
		docs = append(docs, fileDoc{p, alerts})
	}
	if pace {
		slices.SortStableFunc(docs, func(a, b fileDoc) int { return a.alerts[0].IssuedAt.Compare(b.alerts[0].IssuedAt) })
	}
	for i, d := range docs {
		if pace && i > 0 {
			gap := d.alerts[0].IssuedAt.Sub(docs[i-1].alerts[0].IssuedAt)
			if gap > 0 {
				if err := sleep(ctx, s.clock(), time.Duration(float64(gap)/s.Pace)); err != nil {
					return err
				}
			}
		}
		if err := s.deliver(ctx, s.Name(), d.path, d.alerts, sink); err != nil {
			return err
		}
	}
	return nil
}

// list returns the files to read, sorted.
func (s *File) list() ([]string, error) {
	st, err := os.Stat(s.Path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{s.Path}, nil
	}
	entries, err := os.ReadDir(s.Path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || skipName(n) {
			continue
		}
		out = append(out, filepath.Join(s.Path, n))
	}
	return out, nil // ReadDir sorts by name
}

// DocumentExtensions are the file name extensions a File source reads in
// a directory.
var DocumentExtensions = []string{".xml", ".json", ".geojson", ".cap"}

func skipName(n string) bool {
	return strings.HasPrefix(n, ".") || !slices.Contains(DocumentExtensions, strings.ToLower(filepath.Ext(n)))
}

// readFile reads a document, refusing one longer than
// alert.MaxDocumentSize.
func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := alert.ReadDocument(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return data, nil
}
