package promrules

import (
	"fmt"
	"slices"
	"strings"
)

// Check returns what is wrong with f against inv, one sentence each: a rule that does not
// parse, a selector of a metric inv does not export, a label matched that the metric has not,
// a label grouped by that none of the metrics grouped has. Target labels count as every
// metric's.
func Check(f RuleFile, inv Inventory) []string {
	var problems []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("group %s, rule %s", g.Name, r.Name())
			selectors, groupings, err := Parse(r.Expr)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
				continue
			}
			for _, s := range selectors {
				problems = append(problems, checkSelector(where, s, inv)...)
			}
			for _, gr := range groupings {
				// Metrics not exported are reported above; their labels are unknown.
				known := slices.DeleteFunc(slices.Clone(gr.Over), func(s Selector) bool { _, ok := inv[s.Metric]; return !ok })
				if len(known) == 0 {
					continue
				}
				for _, l := range gr.Labels {
					if !slices.ContainsFunc(known, func(s Selector) bool { return inv.has(s.Metric, l) }) {
						problems = append(problems, fmt.Sprintf("%s: %s (%s) uses label %q, which none of %s has", where, gr.Modifier, strings.Join(gr.Labels, ", "), l, metrics(known)))
					}
				}
			}
		}
	}
	return problems
}

func checkSelector(where string, s Selector, inv Inventory) []string {
	if _, ok := inv[s.Metric]; !ok {
		return []string{fmt.Sprintf("%s: metric %s is not exported", where, s.Metric)}
	}
	var problems []string
	for _, l := range s.Labels {
		if !inv.has(s.Metric, l) {
			problems = append(problems, fmt.Sprintf("%s: metric %s has no label %q (it has %s)", where, s.Metric, l, strings.Join(inv[s.Metric], ", ")))
		}
	}
	return problems
}

// CheckSeries returns what is wrong with promtool input series (`name{label="value",...}`)
// against inv: each must name an exported metric and carry exactly its labels, plus every
// target label, as a scrape of the real process would.
func CheckSeries(series []string, inv Inventory) []string {
	var problems []string
	for _, s := range series {
		selectors, _, err := Parse(s)
		if err != nil || len(selectors) != 1 {
			problems = append(problems, fmt.Sprintf("input series %s: not one series (%v)", s, err))
			continue
		}
		sel := selectors[0]
		labels, ok := inv[sel.Metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("input series %s: metric %s is not exported", s, sel.Metric))
			continue
		}
		want := slices.Sorted(slices.Values(append(slices.Clone(labels), TargetLabels...)))
		want = slices.Compact(want)
		if !slices.Equal(sel.Labels, want) {
			problems = append(problems, fmt.Sprintf("input series %s: labels %s, want %s (what %s exports and a scrape adds)", s, strings.Join(sel.Labels, ","), strings.Join(want, ","), sel.Metric))
		}
	}
	return problems
}

// Collisions returns the exported labels that are also target labels: Prometheus renames them
// (to exported_<name>) on scrape, so a rule using them would match nothing.
func Collisions(inv Inventory) []string {
	var out []string
	for name, labels := range inv {
		if !strings.HasPrefix(name, "image_cloner_") {
			continue
		}
		for _, l := range labels {
			if slices.Contains(TargetLabels, l) {
				out = append(out, name+" has label "+l)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (inv Inventory) has(metric, label string) bool {
	labels, ok := inv[metric]
	return ok && (slices.Contains(labels, label) || slices.Contains(TargetLabels, label))
}

func metrics(ss []Selector) string {
	var names []string
	for _, s := range ss {
		names = append(names, s.Metric)
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ", ")
}
