package routing

import (
	"reflect"
	"slices"

	"github.com/lbd/lbd/config"
)

// Plan is what going from one Table to the next changes. The routing-config
// owner carries it out step by step (start and stop pools, add, remove and
// replace backends, send weight, cap and drain commands, switch policies
// and canaries, reconfigure a pool's loops), and POST /admin/reload shows it.
type Plan struct {
	PoolsAdded   []string      `json:"pools_added,omitempty"`
	PoolsRemoved []string      `json:"pools_removed,omitempty"`
	Backends     []BackendStep `json:"backends,omitempty"`
	Pools        []PoolStep    `json:"pools,omitempty"`
	// Kept counts the backends that stay as they are: their actors keep
	// their EWMA, health, breaker, ejections, warm-up and connections.
	Kept int `json:"backends_kept"`
}

// Backend step actions.
const (
	Added    = "added"
	Removed  = "removed"  // drained, then its actor stops
	Replaced = "replaced" // protocol or TLS trust changed: a new actor; the old one drains
	Updated  = "updated"  // weight, cap, drain or name: commands to the running actor
)

// BackendStep is one backend's change.
type BackendStep struct {
	Pool   string `json:"pool"`
	URL    string `json:"url"`
	Action string `json:"action"`
	// Changes names each changed field with its old and new value.
	Changes map[string][2]any `json:"changes,omitempty"`
	Old     Backend           `json:"-"`
	New     Backend           `json:"-"` // the entry after the step (not for Removed)
}

// PoolStep is what changed in a pool that both tables have, apart from its backends.
type PoolStep struct {
	Pool      string         `json:"pool"`
	Policy    *Policy        `json:"policy,omitempty"` // the new policy and sticky, when changed
	OldPolicy *Policy        `json:"policy_was,omitempty"`
	Canary    *config.Canary `json:"canary,omitempty"` // the new canary, when changed
	OldCanary *config.Canary `json:"canary_was,omitempty"`
	// Settings names the sections of the pool's own settings that changed:
	// health, breaker, outlier, warmup, retries, max_inflight.
	Settings []string `json:"settings,omitempty"`
}

// Empty reports a plan that changes nothing.
func (p Plan) Empty() bool {
	return len(p.PoolsAdded)+len(p.PoolsRemoved)+len(p.Backends)+len(p.Pools) == 0
}

// Diff returns the plan from old to next. Pools that only next has are
// listed in PoolsAdded with their backends as Added steps.
func Diff(old, next *Table) Plan {
	var plan Plan
	for _, op := range old.Pools {
		if _, ok := next.Pool(op.Name); !ok {
			plan.PoolsRemoved = append(plan.PoolsRemoved, op.Name)
		}
	}
	for i := range next.Pools {
		np := &next.Pools[i]
		op, ok := old.Pool(np.Name)
		if !ok {
			plan.PoolsAdded = append(plan.PoolsAdded, np.Name)
			op = &Pool{Name: np.Name}
		} else if step := poolStep(op, np); step != nil {
			plan.Pools = append(plan.Pools, *step)
		}
		plan.diffBackends(op, np)
	}
	return plan
}

func (plan *Plan) diffBackends(op, np *Pool) {
	for _, ob := range op.Backends {
		if _, ok := np.Backend(ob.URL); !ok {
			plan.Backends = append(plan.Backends, BackendStep{Pool: np.Name, URL: ob.URL, Action: Removed, Old: ob})
		}
	}
	for _, nb := range np.Backends {
		ob, ok := op.Backend(nb.URL)
		switch {
		case !ok:
			plan.Backends = append(plan.Backends, BackendStep{Pool: np.Name, URL: nb.URL, Action: Added, New: nb})
		case ob == nb:
			plan.Kept++
		default:
			action := Updated
			if ob.Identity() != nb.Identity() {
				action = Replaced
			}
			plan.Backends = append(plan.Backends, BackendStep{Pool: np.Name, URL: nb.URL, Action: action,
				Changes: fieldChanges(ob, nb), Old: ob, New: nb})
		}
	}
}

// fieldChanges lists the JSON fields of two backends that differ.
func fieldChanges(a, b Backend) map[string][2]any {
	out := map[string][2]any{}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if x, y := va.Field(i).Interface(), vb.Field(i).Interface(); x != y {
			out[jsonName(va.Type().Field(i))] = [2]any{x, y}
		}
	}
	return out
}

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	for i := range len(tag) {
		if tag[i] == ',' {
			return tag[:i]
		}
	}
	return tag
}

func poolStep(op, np *Pool) *PoolStep {
	s := PoolStep{Pool: np.Name}
	if op.Policy != np.Policy || op.Sticky != np.Sticky {
		s.Policy = &Policy{Policy: np.Policy, Sticky: np.Sticky}
		s.OldPolicy = &Policy{Policy: op.Policy, Sticky: op.Sticky}
	}
	if op.Canary != np.Canary {
		c, oc := np.Canary, op.Canary
		s.Canary, s.OldCanary = &c, &oc
	}
	o, n := op.Settings, np.Settings
	for _, f := range []struct {
		name string
		same bool
	}{
		{"health", o.Health == n.Health},
		{"breaker", o.Breaker == n.Breaker},
		{"outlier", o.Outlier == n.Outlier},
		{"warmup", o.Warmup == n.Warmup},
		{"retries", o.Retries == n.Retries},
		{"max_inflight", o.MaxInflight == n.MaxInflight},
	} {
		if !f.same {
			s.Settings = append(s.Settings, f.name)
		}
	}
	if s.Policy == nil && s.Canary == nil && len(s.Settings) == 0 {
		return nil
	}
	return &s
}

// Changed reports whether the pool step changed the named settings section.
func (s PoolStep) Changed(section string) bool { return slices.Contains(s.Settings, section) }
