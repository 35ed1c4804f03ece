// Package all registers every fault type. Import it for its side effect.
package all

import (
	_ "github.com/chaoscron/chaoscron/pkg/fault/cpu"     // cpu burn
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"    // disk fill
	_ "github.com/chaoscron/chaoscron/pkg/fault/memory"  // memory hog
	_ "github.com/chaoscron/chaoscron/pkg/fault/network" // netem over netlink
	_ "github.com/chaoscron/chaoscron/pkg/fault/process" // kill / stop
	_ "github.com/chaoscron/chaoscron/pkg/fault/request" // http abort / delay
)
