package model

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// decode decodes data into out and checks the result, returning the
// problems of both stages together (see validate.Join). Documents that cannot
// be decoded at all (malformed, empty, too large) are not checked.
func decode(data []byte, out any, check func() error) error {
	err := strictyaml.Decode(data, out)
	var list validate.List
	if err != nil && !errors.As(err, &list) {
		return err
	}
	return validate.Join(err, check())
}

// ParseFederation decodes a federation document (YAML or JSON), fills in
// defaults and validates it. Structural problems (unknown fields, wrong
// types) and validation problems are returned together as a validate.List;
// malformed YAML as a *strictyaml.SyntaxError.
func ParseFederation(data []byte) (*Federation, error) {
	var f Federation
	err := decode(data, &f, func() error {
		f.ApplyDefaults()
		return f.Validate()
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// LoadFederation reads and parses a federation file.
func LoadFederation(path string) (*Federation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read federation: %w", err)
	}
	f, err := ParseFederation(data)
	if err != nil {
		return nil, fmt.Errorf("federation %s: %w", path, err)
	}
	return f, nil
}

// ParseScenario decodes a scenario and validates it against f (see
// Scenario.Validate; f may be nil).
func ParseScenario(data []byte, f *Federation) (*Scenario, error) {
	var s Scenario
	if err := decode(data, &s, func() error { return s.Validate(f) }); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadScenario reads and parses a scenario file.
func LoadScenario(path string, f *Federation) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s, err := ParseScenario(data, f)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// policyDocument is the written form of a policy: the built-in policy to
// start from and the fields that override it.
type policyDocument struct {
	// Base names the built-in policy the document starts from
	// (DefaultPolicyName when empty).
	Base string `json:"base,omitempty"`
	Policy
}

// ParsePolicy decodes a policy document: the built-in policy named by its
// `base` field (DefaultPolicyName when absent) with the fields the document
// sets overriding it; a field set to null keeps the base's value. The name
// defaults to the base's. The result is validated, and problems are reported
// as by ParseFederation.
func ParsePolicy(data []byte) (Policy, error) {
	// The base must be known before the overrides are applied, so the
	// document is decoded twice: once to find the base, then onto it.
	var head policyDocument
	headErr := strictyaml.Decode(data, &head)
	var list validate.List
	if headErr != nil && !errors.As(headErr, &list) {
		return Policy{}, headErr
	}
	base, err := PolicyByName(cmp.Or(head.Base, DefaultPolicyName))
	if err != nil {
		var errs validate.Errors
		errs.Addf("base", "%v", err)
		return Policy{}, validate.Join(headErr, errs.Err())
	}
	doc := policyDocument{Policy: base}
	if err := decode(data, &doc, func() error { return doc.Policy.Validate() }); err != nil {
		return Policy{}, err
	}
	return doc.Policy, nil
}

// LoadPolicy reads and parses a policy file.
func LoadPolicy(path string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// ApplyDefaults fills in the defaults of optional fields: links are
// dedicated and VM disks shared unless the document says otherwise.
// ParseFederation calls it before validating.
func (f *Federation) ApplyDefaults() {
	for i := range f.Links {
		if f.Links[i].Mode == "" {
			f.Links[i].Mode = LinkDedicated
		}
	}
	for i := range f.VMs {
		if f.VMs[i].Storage == "" {
			f.VMs[i].Storage = StorageShared
		}
	}
}
