package promrules

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// PrometheusRule is the part of a monitoring.coreos.com/v1 PrometheusRule these checks read.
type PrometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec RuleFile `json:"spec"`
}

// RuleFile is a Prometheus rule file, the spec of a PrometheusRule: what promtool reads.
type RuleFile struct {
	Groups []Group `json:"groups"`
}

// Group is a rule group.
type Group struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Name is the alert's name, or the recorded series'.
func (r Rule) Name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// LoadPrometheusRule reads a PrometheusRule manifest, refusing fields it does not know (a
// misspelt "annotation:" would otherwise vanish silently).
func LoadPrometheusRule(path string) (*PrometheusRule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pr PrometheusRule
	if err := yaml.UnmarshalStrict(data, &pr, yaml.DisallowUnknownFields); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("%s: a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", path, pr.APIVersion, pr.Kind)
	}
	return &pr, nil
}

// WriteRuleFile writes f as a Prometheus rule file, for promtool.
func WriteRuleFile(f RuleFile, path string) error {
	data, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
