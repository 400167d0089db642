package hunt

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/svclaunch/svclaunch/internal/output"
)

// Progress display timing: nothing shows for loads shorter than
// progressDelay, and the bar is redrawn every progressInterval.
const (
	progressDelay    = time.Second
	progressInterval = 200 * time.Millisecond
)

// noProgress is the progressFunc for piped standard error and --quiet.
func noProgress(_ string, r io.Reader, _ int64) (io.Reader, func()) {
	return r, func() {}
}

// terminalProgress returns a progressFunc that draws a bar on w, a
// terminal, once a load has taken delay (progressDelay outside tests).
func terminalProgress(w io.Writer, delay time.Duration) progressFunc {
	return func(name string, r io.Reader, size int64) (io.Reader, func()) {
		counter := &countingReader{r: r}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)

		go func() {
			defer wg.Done()

			timer := time.NewTimer(delay)
			defer timer.Stop()
			select {
			case <-done:
				return
			case <-timer.C:
			}

			ticker := time.NewTicker(progressInterval)
			defer ticker.Stop()
			width := output.TerminalWidth(w)
			for {
				fmt.Fprint(w, "\r"+progressLine(name, counter.n.Load(), size, width))
				select {
				case <-done:
					// Blank the bar so that the summary starts on a clean line.
					fmt.Fprint(w, "\r"+strings.Repeat(" ", width-1)+"\r")
					return
				case <-ticker.C:
				}
			}
		}()

		return counter, func() {
			close(done)
			wg.Wait()
		}
	}
}

// countingReader counts the bytes read through it; the progress goroutine
// reads the count while the loader reads the input.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progressBarWidth is the number of cells between the bar's brackets.
const progressBarWidth = 30

// progressLine renders one progress line: the input's name, a bar and the
// bytes read, or only the bytes when the size is unknown. It takes at most
// width-1 cells, because some terminals wrap a line that fills the last column.
func progressLine(name string, read, size int64, width int) string {
	var status string
	if size > 0 {
		read = min(read, size)
		filled := int(read * progressBarWidth / size)
		status = fmt.Sprintf(" [%s%s] %3d%% %s / %s",
			strings.Repeat("=", filled), strings.Repeat(" ", progressBarWidth-filled),
			read*100/size, formatBytes(read), formatBytes(size))
	} else {
		status = " " + formatBytes(read) + " read"
	}

	room := width - 1 - len(status)
	label := output.EscapeText(name)
	if room < 8 {
		return truncateCells(label+status, width-1)
	}
	return truncateCells(label, room) + status
}

// truncateCells cuts s to at most n characters, marking the cut with "…".
func truncateCells(s string, n int) string {
	runes := []rune(s)
	if len(runes) <= n {
		return s
	}
	if n <= 1 {
		return string(runes[:max(n, 0)])
	}
	return string(runes[:n-1]) + "…"
}

// formatBytes renders a byte count in binary units, such as "12.1 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	value, exponent := float64(n)/unit, 0
	for value >= unit && exponent < 4 {
		value /= unit
		exponent++
	}
	return fmt.Sprintf("%.1f %ciB", value, "KMGTP"[exponent])
}
