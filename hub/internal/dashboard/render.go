package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/image-cloner/image-cloner/hub/internal/images"
)

var funcs = template.FuncMap{
	"bytes":   humanBytes,
	"ago":     ago,
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"num":     func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"short":   shortDigest,
	"lower":   strings.ToLower,
	"plot":    plot,
	"float":   func(n int64) float64 { return float64(n) },
	"states":  upstreamStates,
	"label":   func(s images.ContainerState) string { return stateLabels[s][0] },
	"explain": func(s images.ContainerState) string { return stateLabels[s][1] },
}

func humanBytes(f float64) string {
	const unit = 1024
	if f < unit {
		return fmt.Sprintf("%.0f B", f)
	}
	div, exp := float64(unit), 0
	for n := f / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", f/div, "KMGTPE"[exp])
}

func ago(t any) string {
	var tt time.Time
	switch x := t.(type) {
	case time.Time:
		tt = x
	case *time.Time:
		if x == nil {
			return "never"
		}
		tt = *x
	}
	if tt.IsZero() {
		return "never"
	}
	d := time.Since(tt).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func shortDigest(d string) string {
	if i := strings.Index(d, ":"); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// plot draws one field of the series as an inline SVG line, width x height, with its last
// value as a label.
func plot(points []Point, field, title string) template.HTML {
	const w, h, pad = 320.0, 90.0, 4.0
	vals := make([]float64, len(points))
	for i, p := range points {
		if field == "bytes" {
			vals[i] = p.Bytes
		} else {
			vals[i] = p.Copies
		}
	}
	last := 0.0
	if len(vals) > 0 {
		last = vals[len(vals)-1]
	}
	label := fmt.Sprintf("%.0f", last)
	if field == "bytes" {
		label = humanBytes(last)
	}
	maxv := 0.0
	for _, v := range vals {
		maxv = max(maxv, v)
	}
	var pts []string
	for i, v := range vals {
		x := pad
		if len(vals) > 1 {
			x = pad + (w-2*pad)*float64(i)/float64(len(vals)-1)
		}
		y := h - pad
		if maxv > 0 {
			y = h - pad - (h-2*pad)*v/maxv
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s">`, w, h, w, h, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%.0f" height="%.0f" class="plot-bg"/>`, w, h)
	if len(pts) > 0 {
		fmt.Fprintf(&b, `<polyline class="plot-line" points="%s"/>`, strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="16" class="plot-label" text-anchor="end">%s</text>`, w-8, template.HTMLEscapeString(label))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every piece above is a number or escaped
}

// upstreamStates are the images.ContainerStates but FromBackup, in their order: the coverage
// page's columns.
func upstreamStates() []images.ContainerState {
	var out []images.ContainerState
	for _, s := range images.ContainerStates {
		if s != images.FromBackup {
			out = append(out, s)
		}
	}
	return out
}
