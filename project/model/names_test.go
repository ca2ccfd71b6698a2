package model

import "testing"

func TestContainerName(t *testing.T) {
	tests := []struct {
		svc  Service
		n    int
		want string
	}{
		{Service{Name: "web"}, 1, "demo-web-1"},
		{Service{Name: "web", NameSeparator: "_"}, 3, "demo_web_3"},
		{Service{Name: "web", ContainerName: "fixed", NameSeparator: "_"}, 1, "fixed"},
	}
	for _, tt := range tests {
		if got := ContainerName("demo", &tt.svc, tt.n); got != tt.want {
			t.Errorf("ContainerName(%+v, %d) = %q, want %q", tt.svc, tt.n, got, tt.want)
		}
	}
}
