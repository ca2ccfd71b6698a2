package supervisor

import (
	"regexp"
	"slices"
	"testing"

	"github.com/berthrun/berth/project/model"
)

func TestParseDetachKeys(t *testing.T) {
	tests := []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{"", nil, false},
		{"ctrl-p,ctrl-q", []byte{16, 17}, false},
		{"a,ctrl-A", []byte{'a', 1}, false},
		{"ctrl-@,ctrl-_", []byte{0, 31}, false},
		{"ctrl-", nil, true},
		{"ab", nil, true},
		{"ctrl-1", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseDetachKeys(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseDetachKeys(%q) = %v, %v; want %v (error %t)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOneOffService(t *testing.T) {
	base := model.Service{
		Name: "web", Restart: "always", Replicas: 3,
		Labels:   map[string]string{"a": "b"},
		Networks: []model.NetworkAttachment{{Name: "p_default", Aliases: []string{"www"}}},
	}
	tests := []struct {
		name        string
		req         RunRequest
		wantName    string
		wantAliases []string
		wantDNS     []string
	}{
		{"default", RunRequest{}, `^p-web-run-[0-9a-f]{12}$`, nil, []string{"NAME", "host", "0123456789ab"}},
		{"named, aliases", RunRequest{Name: "mine", UseAliases: true}, `^mine$`, []string{"www", "web"}, []string{"NAME", "host", "0123456789ab"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := oneOffService("p", base, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(tt.wantName).MatchString(svc.ContainerName) {
				t.Errorf("name %q", svc.ContainerName)
			}
			if !isOneOff(svc.Labels) || len(svc.Labels[labelSlug]) != 64 || svc.Labels["a"] != "b" {
				t.Errorf("labels %v", svc.Labels)
			}
			if base.Labels[model.LabelOneoff] != "" || len(base.Networks[0].Aliases) != 1 {
				t.Errorf("the model's service changed: %+v", base)
			}
			if svc.Restart != "" || svc.Replicas != 1 {
				t.Errorf("restart %q, replicas %d", svc.Restart, svc.Replicas)
			}
			if !slices.Equal(svc.Networks[0].Aliases, tt.wantAliases) {
				t.Errorf("aliases %v", svc.Networks[0].Aliases)
			}
			want := slices.Clone(tt.wantDNS)
			want[0] = svc.ContainerName
			if got := dnsNames(&svc, svc.ContainerName, "host", "0123456789abcdef"); !slices.Equal(got, want) {
				t.Errorf("dns names %v, want %v", got, want)
			}
		})
	}
	if got := dnsNames(&base, "p-web-1", "host", "0123456789abcdef"); !slices.Contains(got, "web") {
		t.Errorf("a replica's dns names lack the service: %v", got)
	}
}
