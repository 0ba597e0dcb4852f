package promrules

import (
	"fmt"
	"slices"

	"github.com/VictoriaMetrics/metricsql"
)

// Selector is one series selector of an expression: a metric name and the label names its
// matchers use (other than the name).
type Selector struct {
	Metric string
	Labels []string
}

// Grouping is a list of label names an expression aggregates or matches on: by (...),
// without (...), on (...), ignoring (...), group_left (...) or group_right (...), with the
// selectors of the sub-expressions it applies to, one of which must have each label.
type Grouping struct {
	Modifier string
	Labels   []string
	Over     []Selector
}

// Parse returns every selector of a PromQL expression and every label grouping in it. A
// selector without a metric name (`{job="x"}`) is an error: it cannot be checked.
func Parse(expr string) ([]Selector, []Grouping, error) {
	e, err := metricsql.Parse(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing %q: %w", expr, err)
	}
	var groupings []Grouping
	var problem error
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		switch e := e.(type) {
		case *metricsql.AggrFuncExpr:
			if len(e.Modifier.Args) > 0 {
				var over []Selector
				for _, a := range e.Args {
					over = append(over, selectorsOf(a, &problem)...)
				}
				groupings = append(groupings, Grouping{Modifier: e.Modifier.Op, Labels: e.Modifier.Args, Over: over})
			}
		case *metricsql.BinaryOpExpr:
			over := append(selectorsOf(e.Left, &problem), selectorsOf(e.Right, &problem)...)
			for _, m := range []metricsql.ModifierExpr{e.GroupModifier, e.JoinModifier} {
				if len(m.Args) > 0 {
					groupings = append(groupings, Grouping{Modifier: m.Op, Labels: m.Args, Over: over})
				}
			}
		}
	})
	selectors := selectorsOf(e, &problem)
	if problem != nil {
		return nil, nil, fmt.Errorf("%q: %w", expr, problem)
	}
	return selectors, groupings, nil
}

// selectorsOf returns the selectors in e, recording in problem one that names no metric.
func selectorsOf(e metricsql.Expr, problem *error) []Selector {
	var out []Selector
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		me, ok := e.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, lfs := range me.LabelFilterss {
			s := Selector{}
			for _, lf := range lfs {
				if lf.Label == "__name__" && !lf.IsRegexp && !lf.IsNegative {
					s.Metric = lf.Value
					continue
				}
				s.Labels = append(s.Labels, lf.Label)
			}
			if s.Metric == "" {
				*problem = fmt.Errorf("a selector without a metric name cannot be checked: %s", me.AppendString(nil))
				continue
			}
			slices.Sort(s.Labels)
			out = append(out, s)
		}
	})
	return out
}
