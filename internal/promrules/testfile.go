package promrules

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// UnitTests is the part of a promtool rules unit test file (`promtool test rules`) these
// checks read.
type UnitTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name        string `json:"name"`
		InputSeries []struct {
			Series string `json:"series"`
		} `json:"input_series"`
		AlertRuleTests []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// LoadUnitTests reads a promtool unit test file.
func LoadUnitTests(path string) (*UnitTests, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var u UnitTests
	if err := yaml.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &u, nil
}

// Series returns every input series of every test.
func (u *UnitTests) Series() []string {
	var out []string
	for _, t := range u.Tests {
		for _, s := range t.InputSeries {
			out = append(out, s.Series)
		}
	}
	return out
}

// Untested returns the alerts of f that no test expects to fire, or that no test expects to
// stay silent: every alert needs both, or its expression is not really tested.
func (u *UnitTests) Untested(f RuleFile) []string {
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, t := range u.Tests {
		for _, a := range t.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] {
				out = append(out, r.Alert+": no test where it fires")
			}
			if !silent[r.Alert] {
				out = append(out, r.Alert+": no test where it stays silent")
			}
		}
	}
	return out
}
