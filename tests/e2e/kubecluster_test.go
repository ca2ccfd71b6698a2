package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeCluster is a Kubernetes control plane on loopback for the bridge
// tests: etcd from Debian, kube-apiserver (and, when asked for, the
// kube-controller-manager) of the release of berth's k8s.io modules, built
// by scripts/kubeapiserver.sh. No scheduler and no kubelet: pods are
// made but never run.
type kubeCluster struct {
	t          *testing.T
	dir        string
	binDir     string
	server     string
	kubeconfig string
	dyn        dynamic.Interface
}

const kubeRelease = "v1.37.2"

// startKubeCluster starts etcd and kube-apiserver, each stopped by its PID
// when the test ends, and waits until the API server is ready.
func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd not found: run scripts/deps.sh --test (Debian's etcd-server)")
	}
	out, err := exec.Command("bash", filepath.Join(repo(t), "scripts", "kubeapiserver.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/kubeapiserver.sh: %v", err)
	}
	c := &kubeCluster{t: t, dir: t.TempDir(), binDir: strings.TrimSpace(string(out))}
	pki := c.writePKI()

	clientPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	c.start("etcd", etcd,
		"--name=berth-test", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=berth-test="+peerURL, "--log-level=warn")

	c.server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.start("kube-apiserver", filepath.Join(c.binDir, "kube-apiserver-"+kubeRelease),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--advertise-address=127.0.0.1",
		// The endpoints of the "kubernetes" Service may not be loopback.
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--tls-cert-file="+pki["server.crt"], "--tls-private-key-file="+pki["server.key"],
		"--client-ca-file="+pki["ca.crt"],
		"--service-account-key-file="+pki["sa.pub"],
		"--service-account-signing-key-file="+pki["sa.key"],
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=AlwaysAllow",
		"--enable-priority-and-fairness=false", "--profiling=false",
		"--cert-dir="+filepath.Join(c.dir, "certs"))

	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, c.server, pki["ca.crt"], pki["admin.crt"], pki["admin.key"])
	if err := os.WriteFile(c.kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	c.waitReady(pki)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return c
}

// startControllerManager runs the controllers that finish deletions
// (namespaces, garbage collection, claims' protection) and make the pods of Deployments and
// Jobs, until the returned function stops them.
func (c *kubeCluster) startControllerManager() (stop func()) {
	c.t.Helper()
	pki := filepath.Join(c.dir, "pki")
	return c.start("kube-controller-manager", filepath.Join(c.binDir, "kube-controller-manager-"+kubeRelease),
		"--kubeconfig="+c.kubeconfig,
		"--controllers=namespace-controller,garbage-collector-controller,deployment-controller,"+
			"replicaset-controller,job-controller,serviceaccount-controller,"+
			"persistentvolumeclaim-protection-controller",
		"--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+filepath.Join(pki, "sa.key"),
		"--root-ca-file="+filepath.Join(pki, "ca.crt"),
		"--concurrent-gc-syncs=5", "--namespace-sync-period=10s")
}

// start runs one component with its output in a log file, shown when the
// test fails, and stops it by its PID when stop is called or at the end
// of the test.
func (c *kubeCluster) start(name, bin string, args ...string) (stop func()) {
	c.t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if c.t.Failed() {
				data, _ := os.ReadFile(logPath)
				if len(data) > 4000 {
					data = data[len(data)-4000:]
				}
				c.t.Logf("%s log (tail):\n%s", name, data)
			}
		})
	}
	c.t.Cleanup(stop)
	return stop
}

// waitReady polls /readyz with the admin's certificate.
func (c *kubeCluster) waitReady(pki map[string]string) {
	c.t.Helper()
	cert, err := tls.LoadX509KeyPair(pki["admin.crt"], pki["admin.key"])
	if err != nil {
		c.t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(pki["ca.crt"])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := hc.Get(c.server + "/readyz")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status + " " + b.String()
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.t.Fatalf("kube-apiserver not ready after 3m: %s", last)
}

// writePKI makes a CA, the API server's certificate for 127.0.0.1, an
// admin client certificate (group system:masters) and the service
// account signing key, and returns their paths by name.
func (c *kubeCluster) writePKI() map[string]string {
	t := c.t
	t.Helper()
	dir := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	write := func(name, typ string, der []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.crt", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: subject,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: ips, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", "CERTIFICATE", der)
		write(name+".key", "EC PRIVATE KEY", kder)
	}
	issue("server", 2, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)}, []string{"localhost", "kubernetes", "kubernetes.default.svc"})
	issue("admin", 3, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil, nil)
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	write("sa.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(sa))
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write("sa.pub", "PUBLIC KEY", pub)
	return paths
}
