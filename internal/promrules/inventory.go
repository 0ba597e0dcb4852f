package promrules

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Inventory is what a process exports: each metric name with its label names.
type Inventory map[string][]string

// TargetLabels are the labels Prometheus Operator's PodMonitor scrape adds to every series
// (deploy/monitoring's PodMonitors), which rules may use beside the exported ones.
var TargetLabels = []string{"container", "endpoint", "instance", "job", "namespace", "pod"}

// Recorder is a prometheus.Registerer that records every collector registered through it and
// passes each on to Next: given to the hub or the agent as their metrics registry, it knows
// every metric they export, including vectors no label value was observed for yet (which a
// scrape does not show).
type Recorder struct {
	Next prometheus.Registerer

	mu         sync.Mutex
	collectors []prometheus.Collector
}

// Register records c and registers it with Next.
func (r *Recorder) Register(c prometheus.Collector) error {
	if err := r.Next.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister registers every collector, panicking on the first error.
func (r *Recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister forgets c.
func (r *Recorder) Unregister(c prometheus.Collector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = slices.DeleteFunc(r.collectors, func(x prometheus.Collector) bool { return x == c })
	return r.Next.Unregister(c)
}

// Inventory describes every recorded collector.
func (r *Recorder) Inventory() (Inventory, error) {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	inv := Inventory{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc)
		go func() {
			c.Describe(ch)
			close(ch)
		}()
		var err error
		for d := range ch {
			if err != nil {
				continue
			}
			var name string
			var labels []string
			if name, labels, err = ParseDesc(d); err == nil {
				inv.add(name, labels...)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return inv, nil
}

// descPattern is how client_golang prints a Desc (Desc.String), the only way it shows its
// name and label names: `Desc{fqName: "x", help: "...", constLabels: {a="b"}, variableLabels: {c,d}}`.
// A client_golang release that prints it otherwise makes ParseDesc fail, never pass.
var descPattern = regexp.MustCompile(`^Desc\{fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)", help: "(?:[^"\\]|\\.)*", constLabels: \{(.*)\}, variableLabels: \{([a-zA-Z0-9_,()]*)\}\}$`)

// constLabelPattern matches one `name="value"` of constLabels.
var constLabelPattern = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

// ParseDesc returns a descriptor's metric name and label names (constant and variable).
func ParseDesc(d *prometheus.Desc) (string, []string, error) {
	m := descPattern.FindStringSubmatch(d.String())
	if m == nil {
		return "", nil, fmt.Errorf("cannot read the metric name and labels of %s", d)
	}
	var labels []string
	for _, c := range constLabelPattern.FindAllStringSubmatch(m[2], -1) {
		labels = append(labels, c[1])
	}
	for _, v := range strings.Split(m[3], ",") {
		// A constrained label prints as c(name).
		if v = strings.TrimSuffix(strings.TrimPrefix(v, "c("), ")"); v != "" {
			labels = append(labels, v)
		}
	}
	return m[1], labels, nil
}

// Gathered is the inventory of what g serves now: the metrics it has series of, histograms and
// summaries under the names of their series (_bucket with le, _sum, _count). For registries
// whose collectors were not recorded (controller-runtime's own metrics); vectors without a
// series yet are missing from it.
func Gathered(g prometheus.Gatherer) (Inventory, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, err
	}
	inv := Inventory{}
	for _, f := range fams {
		var labels []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			inv.add(f.GetName()+"_bucket", append(labels, "le")...)
			inv.add(f.GetName()+"_sum", labels...)
			inv.add(f.GetName()+"_count", labels...)
		case dto.MetricType_SUMMARY:
			inv.add(f.GetName(), append(labels, "quantile")...)
			inv.add(f.GetName()+"_sum", labels...)
			inv.add(f.GetName()+"_count", labels...)
		default:
			inv.add(f.GetName(), labels...)
		}
	}
	return inv, nil
}

// Merge returns the union of inventories.
func Merge(invs ...Inventory) Inventory {
	out := Inventory{}
	for _, inv := range invs {
		for name, labels := range inv {
			out.add(name, labels...)
		}
	}
	return out
}

// Without returns a copy of inv without the metric name: what a rename leaves.
func (inv Inventory) Without(name string) Inventory {
	out := maps.Clone(inv)
	delete(out, name)
	return out
}

func (inv Inventory) add(name string, labels ...string) {
	all := append(slices.Clone(inv[name]), labels...)
	slices.Sort(all)
	inv[name] = slices.Compact(all)
	if inv[name] == nil {
		inv[name] = []string{}
	}
}
