package model

import (
	"strings"
	"testing"
)

func TestMaxReplicas(t *testing.T) {
	for _, tc := range []struct {
		env     string
		want    int
		wantErr bool
	}{
		{"", DefaultMaxReplicas, false},
		{"3000", 3000, false},
		{"1", 1, false},
		{"0", 0, true},
		{"-5", 0, true},
		{"lots", 0, true},
	} {
		t.Setenv(MaxReplicasEnv, tc.env)
		got, err := MaxReplicas()
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s=%q: %d, %v; want %d (error %t)", MaxReplicasEnv, tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCheckReplicas(t *testing.T) {
	for _, tc := range []struct {
		n, limit int
		ok       bool
	}{
		{0, 100, true},
		{100, 100, true},
		{101, 100, false},
		{3000, 100, false},
	} {
		err := CheckReplicas("web", tc.n, tc.limit)
		if (err == nil) != tc.ok {
			t.Errorf("CheckReplicas(%d, %d) = %v", tc.n, tc.limit, err)
		}
		if err != nil && !strings.Contains(err.Error(), MaxReplicasEnv) {
			t.Errorf("error does not say how to raise the limit: %v", err)
		}
	}
}
