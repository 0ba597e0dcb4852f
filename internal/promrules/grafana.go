package promrules

import (
	"encoding/json"
	"fmt"
	"os"
)

// LoadGrafanaDashboard reads the PromQL queries of a Grafana dashboard's panels (rows'
// nested panels included) as a RuleFile, one record per query named after its panel, so that
// Check holds them to the same inventory as the alerts.
func LoadGrafanaDashboard(path string) (RuleFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return RuleFile{}, fmt.Errorf("reading Grafana dashboard: %w", err)
	}
	type panel struct {
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return RuleFile{}, fmt.Errorf("parsing Grafana dashboard %s: %w", path, err)
	}
	g := Group{Name: "dashboard " + path}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				g.Rules = append(g.Rules, Rule{Record: fmt.Sprintf("%q/%s", p.Title, t.RefID), Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(g.Rules) == 0 {
		return RuleFile{}, fmt.Errorf("grafana dashboard %s has no PromQL query", path)
	}
	return RuleFile{Groups: []Group{g}}, nil
}
