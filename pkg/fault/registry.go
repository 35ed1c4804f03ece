package fault

import (
	"fmt"
	"slices"
	"sync"
)

// Factory validates params and builds a Fault. It must not change the system, so config
// validation can call it freely. Errors about parameters should be *FieldError values (or an
// Errors list of them) so the caller can point at the key and its line.
type Factory func(params Params, env Env) (Fault, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a fault type available under name. It is meant to be called from the fault
// subpackage's init(); registering a name twice is a programming error and panics.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("fault: Register called twice for " + name)
	}
	factories[name] = f
}

// New builds a fault of the named type.
func New(name string, params Params, env Env) (Fault, error) {
	mu.RLock()
	f, ok := factories[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown fault type %q (known: %v)", name, Types())
	}
	return f(params, env.WithDefaults())
}

// Known reports whether a fault type of that name is registered.
func Known(name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	_, ok := factories[name]
	return ok
}

// Types lists the registered fault types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
