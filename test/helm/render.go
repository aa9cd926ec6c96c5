// A stand-in for `helm template`, for the tests (no helm binary exists for Debian 12 or npm):
// Helm's template engine is Go's text/template with sprig's functions plus include, toYaml and
// required; this does the same over the chart directory, with Helm's value coalescing (the
// user's maps merged into values.yaml's, null deletes, `global` copied into each sub-chart), the
// sub-chart rendered with its key's values when its condition holds, and .Files.Get.
//
// Usage: render CHART_DIR RELEASE NAMESPACE [VALUES_JSON] — prints the rendered documents, each
// after a "# Source: path" line, like `helm template`. Built by test/unit/helm-render.test.ts
// with Debian's golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v3-dev (GOPATH mode).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type chartMeta struct {
	Name         string `yaml:"name"`
	Version      string `yaml:"version"`
	AppVersion   string `yaml:"appVersion"`
	Dependencies []struct {
		Name      string `yaml:"name"`
		Condition string `yaml:"condition"`
	} `yaml:"dependencies"`
}

type files struct{ dir string }

func (f files) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		return ""
	}
	return string(b)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func readYaml(path string, out interface{}) {
	b, err := os.ReadFile(path)
	must(err)
	must(yaml.Unmarshal(b, out))
}

// coalesce merges over into base as Helm does: maps merge, other values replace, null deletes.
func coalesce(base, over map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if v == nil {
			delete(out, k)
			continue
		}
		bm, ok1 := out[k].(map[string]interface{})
		om, ok2 := v.(map[string]interface{})
		if ok1 && ok2 {
			out[k] = coalesce(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

func toYaml(v interface{}) string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func render(dir string, values map[string]interface{}, release map[string]interface{}) []string {
	var meta chartMeta
	readYaml(filepath.Join(dir, "Chart.yaml"), &meta)
	t := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYaml
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var b strings.Builder
		err := t.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	t.Funcs(funcs)
	paths, _ := filepath.Glob(filepath.Join(dir, "templates", "*"))
	sort.Strings(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		must(err)
		rel, _ := filepath.Rel(filepath.Dir(dir), p)
		_, err = t.New(rel).Parse(string(b))
		must(err)
	}
	data := map[string]interface{}{
		"Values":  values,
		"Release": release,
		"Chart":   map[string]interface{}{"Name": meta.Name, "Version": meta.Version, "AppVersion": meta.AppVersion},
		"Files":   files{dir},
	}
	var out []string
	for _, p := range paths {
		base := filepath.Base(p)
		if strings.HasPrefix(base, "_") || !strings.HasSuffix(base, ".yaml") {
			continue // helpers and NOTES.txt are not manifests
		}
		rel, _ := filepath.Rel(filepath.Dir(dir), p)
		var b strings.Builder
		must(t.ExecuteTemplate(&b, rel, data))
		if strings.TrimSpace(b.String()) != "" {
			out = append(out, "# Source: "+rel+"\n"+b.String())
		}
	}
	global, _ := values["global"].(map[string]interface{})
	for _, d := range meta.Dependencies {
		sub, _ := values[d.Name].(map[string]interface{})
		if sub == nil {
			sub = map[string]interface{}{}
		}
		if d.Condition != "" {
			key := strings.TrimPrefix(d.Condition, d.Name+".")
			if on, ok := sub[key].(bool); ok && !on {
				continue
			}
		}
		var subDefaults map[string]interface{}
		if _, err := os.Stat(filepath.Join(dir, "charts", d.Name, "values.yaml")); err == nil {
			readYaml(filepath.Join(dir, "charts", d.Name, "values.yaml"), &subDefaults)
		}
		subValues := coalesce(coalesce(map[string]interface{}{}, subDefaults), sub)
		subValues["global"] = global
		out = append(out, render(filepath.Join(dir, "charts", d.Name), subValues, release)...)
	}
	return out
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: render CHART_DIR RELEASE NAMESPACE [VALUES_JSON]")
		os.Exit(2)
	}
	dir := os.Args[1]
	var values map[string]interface{}
	readYaml(filepath.Join(dir, "values.yaml"), &values)
	if len(os.Args) > 4 {
		var over map[string]interface{}
		must(json.Unmarshal([]byte(os.Args[4]), &over))
		values = coalesce(values, over)
	}
	if _, ok := values["global"]; !ok {
		values["global"] = map[string]interface{}{}
	}
	release := map[string]interface{}{"Name": os.Args[2], "Namespace": os.Args[3], "Service": "Helm", "IsInstall": true}
	for _, doc := range render(dir, values, release) {
		fmt.Print("---\n", doc, "\n")
	}
}
