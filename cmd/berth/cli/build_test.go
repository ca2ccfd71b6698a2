package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berthrun/berth/build"
	"github.com/berthrun/berth/project"
)

func TestParseSecretFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_SECRET", "from env")
	cases := []struct {
		flag, id string
		want     build.Secret
		err      string
	}{
		{flag: "id=a,src=" + file, id: "a", want: build.Secret{File: file}},
		{flag: "id=a,source=" + file + ",type=file", id: "a", want: build.Secret{File: file}},
		{flag: "id=a,env=BERTH_TEST_SECRET", id: "a", want: build.Secret{Value: []byte("from env")}},
		{flag: "id=BERTH_TEST_SECRET", id: "BERTH_TEST_SECRET", want: build.Secret{Value: []byte("from env")}},
		{flag: "id=a,type=env,src=BERTH_TEST_SECRET", id: "a", want: build.Secret{Value: []byte("from env")}},
		{flag: "src=" + file, err: "id is required"},
		{flag: "id=a,env=BERTH_TEST_UNSET", err: "BERTH_TEST_UNSET is not set"},
		{flag: "id=a,src=" + dir + "/missing", err: "no such file"},
		{flag: "id=a,type=ssh", err: "type must be file or env"},
		{flag: "id=a,color=red", err: `unknown key "color"`},
		{flag: "id", err: "is not KEY=VALUE"},
	}
	for _, c := range cases {
		id, got, err := parseSecretFlag(c.flag)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("--secret %s: error %v, want %q", c.flag, err, c.err)
			}
		case err != nil:
			t.Errorf("--secret %s: %v", c.flag, err)
		case id != c.id || !reflect.DeepEqual(got, c.want):
			t.Errorf("--secret %s: %s %+v, want %s %+v", c.flag, id, got, c.id, c.want)
		}
	}
}

func TestBuildSSHAndTargetNames(t *testing.T) {
	var o build.Options
	err := buildSSH(types.SSHConfig{{ID: "default"}, {ID: "deploy", Path: "/keys/a"}}, []string{"default", "other=/k/1,/k/2"}, &o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"default": nil, "deploy": {"/keys/a"}, "other": {"/k/1", "/k/2"}}
	if !reflect.DeepEqual(o.SSH, want) {
		t.Errorf("ssh: %v, want %v", o.SSH, want)
	}
	if err := buildSSH(nil, []string{"=x"}, &o); err == nil {
		t.Error("--ssh =x accepted")
	}
	p := &project.Project{Project: &types.Project{Services: types.Services{"a.b": {Name: "a.b"}, "a_b": {Name: "a_b"}, "web": {Name: "web"}}}}
	if got := bakeTargetNames(p); !reflect.DeepEqual(got, map[string]string{"a.b": "a_b", "a_b": "a_b_", "web": "web"}) {
		t.Errorf("target names: %v", got)
	}
}
