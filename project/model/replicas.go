package model

import (
	"fmt"
	"os"
	"strconv"
)

// DefaultMaxReplicas is the ceiling on one service's replicas unless
// MaxReplicasEnv says otherwise: every replica is a container with its own
// rootfs mount, network namespace and processes, and an `up` of thousands
// took the machine down rather than failing.
const DefaultMaxReplicas = 100

// MaxReplicasEnv sets the replica ceiling for the commands that read it.
const MaxReplicasEnv = "BERTH_MAX_REPLICAS"

// MaxReplicas returns the replica ceiling: MaxReplicasEnv when set, else
// DefaultMaxReplicas.
func MaxReplicas() (int, error) {
	v := os.Getenv(MaxReplicasEnv)
	if v == "" {
		return DefaultMaxReplicas, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number", MaxReplicasEnv, v)
	}
	return n, nil
}

// CheckReplicas fails when n replicas of service exceed limit.
func CheckReplicas(service string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("service %q: %d replicas exceed the limit of %d per service (set %s to raise it)", service, n, limit, MaxReplicasEnv)
	}
	return nil
}
