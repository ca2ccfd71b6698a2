package supervisor

import (
	"strings"
	"testing"

	"github.com/berthrun/berth/project/model"
)

func TestCheckReplicas(t *testing.T) {
	t.Setenv(model.MaxReplicasEnv, "")
	withReplicas := func(n ...int) *model.Model {
		m := &model.Model{Name: "p"}
		for i, r := range n {
			m.Services = append(m.Services, model.Service{Name: string(rune('a' + i)), Replicas: r})
		}
		return m
	}
	tests := []struct {
		name        string
		m           *model.Model
		clientLimit int
		want        string // "" for no error
	}{
		{"within the default", withReplicas(1, 100), 0, ""},
		{"over the default", withReplicas(1, 3000), 0, `service "b": 3000 replicas exceed the limit of 100`},
		{"the client's ceiling", withReplicas(3000), 5000, ""},
		{"the client's lower ceiling", withReplicas(10), 5, "limit of 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkReplicas(tc.m, tc.clientLimit)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("checkReplicas: %v, want %q", err, tc.want)
			}
		})
	}
	t.Setenv(model.MaxReplicasEnv, "7")
	if err := checkReplicas(withReplicas(8), 0); err == nil || !strings.Contains(err.Error(), "limit of 7") {
		t.Errorf("with %s=7: %v", model.MaxReplicasEnv, err)
	}
}
