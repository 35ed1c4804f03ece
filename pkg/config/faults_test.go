package config

// The real fault types, so validation is tested against the factories the agent runs with.
import (
	_ "github.com/chaoscron/chaoscron/pkg/fault/cpu"
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"
)
