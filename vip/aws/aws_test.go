package aws

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/raftguard/raftguard/internal/testutil"
	"github.com/raftguard/raftguard/vip"
	"github.com/raftguard/raftguard/vip/viptest"
)

const (
	testKeyID  = "AKIDRAFTGUARDTEST01"
	testSecret = "raftguard/test/SECRET/never+shown+anywhere"
)

// fakeEC2 answers the EC2 Query API actions the SDK calls for this mode
// (DescribeNetworkInterfaces, AssignPrivateIpAddresses, DescribeAddresses,
// AssociateAddress: POST / with a form body, XML answers and EC2's error
// document) and the instance metadata service (IMDSv2 token, instance-id,
// the instance identity document), on a loopback TLS server.
type fakeEC2 struct {
	srv *httptest.Server

	mu              sync.Mutex // guards the fields below
	enis            []*fakeENI
	eips            []*fakeEIP
	calls           map[string]int
	params          map[string][]url.Values // action -> the form of each call
	*viptest.Faults                         // by action
	region          string                  // the identity document's region; "" is 404
	assocN          int
	auths           []string
}

type fakeENI struct {
	ID, Instance string
	IPs          []string // the first is the primary
}

type fakeEIP struct {
	PublicIP, AllocID string
	ENI, PrivateIP    string // "" when not associated
	AssocID           string
}

func newFakeEC2(t *testing.T) *fakeEC2 {
	f := &fakeEC2{
		enis: []*fakeENI{
			{ID: "eni-aaaa", Instance: "i-0aaaa", IPs: []string{"10.0.1.11"}},
			{ID: "eni-bbbb", Instance: "i-0bbbb", IPs: []string{"10.0.1.12", "10.0.1.100"}},
		},
		eips:   []*fakeEIP{{PublicIP: "198.51.100.20", AllocID: "eipalloc-0123", ENI: "eni-bbbb", PrivateIP: "10.0.1.100", AssocID: "eipassoc-0"}},
		calls:  map[string]int{},
		params: map[string][]url.Values{},
		Faults: viptest.NewFaults(), region: "eu-central-1",
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() { f.Close(); f.srv.Close() })
	return f
}

func (f *fakeEC2) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
		_, _ = w.Write([]byte("imds-session-token"))
		return
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/latest/"):
		f.serveIMDS(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := r.PostForm.Get("Action")
	f.mu.Lock()
	f.calls[action]++
	f.params[action] = append(f.params[action], r.PostForm)
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	status, slow := f.Next(action)
	f.mu.Unlock()
	if slow {
		f.Hang(r)
		return
	}
	switch status {
	case 0:
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		ec2Error(w, status, "RequestLimitExceeded", "Request limit exceeded.")
		return
	default:
		ec2Error(w, status, "InternalError", "An internal error has occurred.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.PostForm
	switch action {
	case "DescribeNetworkInterfaces":
		var out []*fakeENI
		for _, e := range f.enis {
			if id := p.Get("NetworkInterfaceId.1"); id != "" && id != e.ID {
				continue
			}
			if p.Get("Filter.1.Name") == "attachment.instance-id" && p.Get("Filter.1.Value.1") != e.Instance {
				continue
			}
			out = append(out, e)
		}
		var b strings.Builder
		for _, e := range out {
			fmt.Fprintf(&b, "<item><networkInterfaceId>%s</networkInterfaceId><attachment><instanceId>%s</instanceId><deviceIndex>0</deviceIndex></attachment><privateIpAddressesSet>", e.ID, e.Instance)
			for i, ip := range e.IPs {
				fmt.Fprintf(&b, "<item><privateIpAddress>%s</privateIpAddress><primary>%v</primary></item>", ip, i == 0)
			}
			b.WriteString("</privateIpAddressesSet></item>")
		}
		ec2Answer(w, action, "<networkInterfaceSet>"+b.String()+"</networkInterfaceSet>")
	case "AssignPrivateIpAddresses":
		eni, ip := f.eni(p.Get("NetworkInterfaceId")), p.Get("PrivateIpAddress.1")
		if eni == nil {
			ec2Error(w, 400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID does not exist")
			return
		}
		for _, e := range f.enis {
			if e != eni && slices.Contains(e.IPs, ip) {
				if p.Get("AllowReassignment") != "true" {
					ec2Error(w, 400, "PrivateIpAddressInUse", "address in use")
					return
				}
				e.IPs = slices.DeleteFunc(e.IPs, func(s string) bool { return s == ip })
				for _, a := range f.eips { // the association goes with it here
					if a.ENI == e.ID && a.PrivateIP == ip {
						a.ENI, a.PrivateIP, a.AssocID = "", "", ""
					}
				}
			}
		}
		if !slices.Contains(eni.IPs, ip) {
			eni.IPs = append(eni.IPs, ip)
		}
		ec2Answer(w, action, "<return>true</return><networkInterfaceId>"+eni.ID+"</networkInterfaceId><assignedPrivateIpAddressesSet><item><privateIpAddress>"+ip+"</privateIpAddress></item></assignedPrivateIpAddressesSet>")
	case "DescribeAddresses":
		want := p.Get("PublicIp.1")
		byAlloc := p.Get("AllocationId.1")
		var b strings.Builder
		n := 0
		for _, a := range f.eips {
			if (want != "" && a.PublicIP != want) || (byAlloc != "" && a.AllocID != byAlloc) {
				continue
			}
			n++
			fmt.Fprintf(&b, "<item><publicIp>%s</publicIp><allocationId>%s</allocationId><domain>vpc</domain>", a.PublicIP, a.AllocID)
			if a.ENI != "" {
				fmt.Fprintf(&b, "<associationId>%s</associationId><networkInterfaceId>%s</networkInterfaceId><privateIpAddress>%s</privateIpAddress>", a.AssocID, a.ENI, a.PrivateIP)
			}
			b.WriteString("</item>")
		}
		if n == 0 && want != "" {
			ec2Error(w, 400, "InvalidAddress.NotFound", "Address '"+want+"' not found.")
			return
		}
		if n == 0 && byAlloc != "" {
			ec2Error(w, 400, "InvalidAllocationID.NotFound", "The allocation ID '"+byAlloc+"' does not exist")
			return
		}
		ec2Answer(w, action, "<addressesSet>"+b.String()+"</addressesSet>")
	case "AssociateAddress":
		var a *fakeEIP
		for _, e := range f.eips {
			if e.AllocID == p.Get("AllocationId") {
				a = e
			}
		}
		eni := f.eni(p.Get("NetworkInterfaceId"))
		ip := p.Get("PrivateIpAddress")
		switch {
		case a == nil:
			ec2Error(w, 400, "InvalidAllocationID.NotFound", "The allocation ID does not exist")
			return
		case eni == nil || !slices.Contains(eni.IPs, ip):
			ec2Error(w, 400, "InvalidParameterValue", "the private IP is not on the network interface")
			return
		case a.ENI != "" && p.Get("AllowReassociation") != "true":
			ec2Error(w, 400, "Resource.AlreadyAssociated", "already associated")
			return
		}
		f.assocN++
		a.ENI, a.PrivateIP, a.AssocID = eni.ID, ip, fmt.Sprintf("eipassoc-%d", f.assocN)
		ec2Answer(w, action, "<return>true</return><associationId>"+a.AssocID+"</associationId>")
	default:
		ec2Error(w, 400, "InvalidAction", "The action "+action+" is not valid for this web service.")
	}
}

func (f *fakeEC2) serveIMDS(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "imds-session-token" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	region := f.region
	f.mu.Unlock()
	switch r.URL.Path {
	case "/latest/meta-data/instance-id":
		_, _ = w.Write([]byte("i-0aaaa"))
	case "/latest/dynamic/instance-identity/document":
		if region == "" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"region":%q,"instanceId":"i-0aaaa","availabilityZone":"%sa"}`, region, region)
	default:
		http.NotFound(w, r)
	}
}

// eni returns the interface with id; f.mu held.
func (f *fakeEC2) eni(id string) *fakeENI {
	for _, e := range f.enis {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func ec2Answer(w http.ResponseWriter, action, inner string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId>%s</%sResponse>`, action, inner, action)
}

func ec2Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(msg))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-err</RequestID></Response>`, code, b.String())
}

func (f *fakeEC2) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

func (f *fakeEC2) set(fn func(f *fakeEC2)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// state is where the VIP and the Elastic IP are: "eni-aaaa eni-aaaa/10.0.1.100".
func (f *fakeEC2) state() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var holders []string
	for _, e := range f.enis {
		if slices.Contains(e.IPs, "10.0.1.100") {
			holders = append(holders, e.ID)
		}
	}
	a := f.eips[0]
	return strings.Join(holders, ",") + " " + a.ENI + "/" + a.PrivateIP
}

// isolate keeps the SDK away from this machine's AWS configuration.
func isolate(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_CA_BUNDLE", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
}

func newMode(t *testing.T, f *fakeEC2, c Config, log *bytes.Buffer) *Mode {
	t.Helper()
	isolate(t)
	c.Endpoint = f.srv.URL
	c.IMDSEndpoint = f.srv.URL
	c.HTTPClient = f.srv.Client()
	c.Credentials = credentials.NewStaticCredentialsProvider(testKeyID, testSecret, "")
	if c.RetryMaxBackoff == 0 {
		c.RetryMaxBackoff = 10 * time.Millisecond
	}
	if log != nil {
		c.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var theVIP = []netip.Prefix{netip.MustParsePrefix("10.0.1.100/24")}

func TestAssociateAndHeld(t *testing.T) {
	for _, eip := range []string{"198.51.100.20", "eipalloc-0123"} {
		t.Run(eip, func(t *testing.T) {
			f := newFakeEC2(t)
			var log bytes.Buffer
			// The instance id and the region come from the metadata service.
			m := newMode(t, f, Config{EIP: eip}, &log)
			ctx := context.Background()
			if held, err := m.Held(ctx, theVIP); err != nil || held {
				t.Fatalf("held before acquire: %v %v", held, err)
			}
			changed, err := m.Acquire(ctx, theVIP)
			if err != nil || !changed {
				t.Fatalf("acquire: %v %v", changed, err)
			}
			if got := f.state(); got != "eni-aaaa eni-aaaa/10.0.1.100" {
				t.Fatalf("after acquire: %s", got)
			}
			f.set(func(f *fakeEC2) {
				if f.params["AssignPrivateIpAddresses"][0].Get("AllowReassignment") != "true" ||
					f.params["AssociateAddress"][0].Get("AllowReassociation") != "true" {
					t.Errorf("reassignment not allowed: %v %v", f.params["AssignPrivateIpAddresses"], f.params["AssociateAddress"])
				}
			})
			if held, err := m.Held(ctx, theVIP); err != nil || !held {
				t.Fatalf("held after acquire: %v %v", held, err)
			}
			if changed, err := m.Acquire(ctx, theVIP); err != nil || changed {
				t.Fatalf("second acquire: %v %v", changed, err)
			}
			if f.count("AssignPrivateIpAddresses") != 1 || f.count("AssociateAddress") != 1 {
				t.Fatalf("second acquire called again: %v", f.calls)
			}
			// Another node takes the Elastic IP: not held any more.
			f.set(func(f *fakeEC2) { f.eips[0].ENI, f.eips[0].PrivateIP = "eni-bbbb", "10.0.1.12" })
			if held, err := m.Held(ctx, theVIP); err != nil || held {
				t.Fatalf("held after the EIP moved: %v %v", held, err)
			}
			// Release leaves EC2 alone.
			n := len(f.calls)
			if changed, err := m.Release(ctx, theVIP); err != nil || changed || len(f.calls) != n {
				t.Fatalf("release: %v %v", changed, err)
			}
			if !strings.Contains(log.String(), "Elastic IP associated") {
				t.Fatalf("no log of the association:\n%s", log.String())
			}
		})
	}
}

func TestPrivateIPOnly(t *testing.T) {
	f := newFakeEC2(t)
	m := newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0aaaa"}, nil)
	if changed, err := m.Acquire(context.Background(), theVIP); err != nil || !changed {
		t.Fatalf("acquire: %v %v", changed, err)
	}
	if held, err := m.Held(context.Background(), theVIP); err != nil || !held {
		t.Fatalf("held: %v %v", held, err)
	}
	if f.count("DescribeAddresses")+f.count("AssociateAddress") != 0 {
		t.Fatal("touched an Elastic IP without --aws-eip")
	}
}

func TestThrottledThenAssociated(t *testing.T) {
	f := newFakeEC2(t)
	f.Fail["AssociateAddress"] = []int{429, 503}
	m := newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0aaaa", EIP: "198.51.100.20"}, nil)
	if _, err := m.Acquire(context.Background(), theVIP); err != nil {
		t.Fatalf("acquire after throttling: %v", err)
	}
	if n := f.count("AssociateAddress"); n != 3 {
		t.Fatalf("associate calls: %d, want 3 (two throttled, retried by the SDK)", n)
	}
	if got := f.state(); got != "eni-aaaa eni-aaaa/10.0.1.100" {
		t.Fatalf("after acquire: %s", got)
	}
}

func TestUnknownElasticIP(t *testing.T) {
	for _, eip := range []string{"198.51.100.99", "eipalloc-0999"} {
		f := newFakeEC2(t)
		m := newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0aaaa", EIP: eip}, nil)
		_, err := m.Acquire(context.Background(), theVIP)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), eip) {
			t.Fatalf("%s: %v", eip, err)
		}
		if f.count("AssociateAddress") != 0 {
			t.Fatal("associated something")
		}
	}
	if _, err := New(Config{EIP: "not-an-ip"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a malformed --aws-eip: %v", err)
	}
	if _, err := New(Config{InstanceID: "web-1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a malformed --aws-instance-id: %v", err)
	}
}

func TestSetupErrors(t *testing.T) {
	f := newFakeEC2(t)
	m := newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0cccc"}, nil)
	if _, err := m.Acquire(context.Background(), theVIP); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "i-0cccc") {
		t.Fatalf("an unknown instance: %v", err)
	}
	f.set(func(f *fakeEC2) { f.region = "" })
	m = newMode(t, f, Config{InstanceID: "i-0aaaa"}, nil)
	if _, err := m.Acquire(context.Background(), theVIP); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "--aws-region") {
		t.Fatalf("no region: %v", err)
	}
	m = newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0aaaa"}, nil)
	six := []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
	if _, err := m.Acquire(context.Background(), six); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an IPv6 VIP: %v", err)
	}
	if f.count("AssignPrivateIpAddresses") != 0 {
		t.Fatal("assigned something")
	}
}

func TestSlowAPIBoundedByContext(t *testing.T) {
	f := newFakeEC2(t)
	f.Slow["DescribeNetworkInterfaces"] = true
	m := newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0aaaa"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Acquire(ctx, theVIP)
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline exceeded")) {
		t.Fatalf("acquire against a hanging API: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("acquire took %v past its 200ms deadline", d)
	}
}

// TestRunnerRetriesAndReports drives the mode through vip.Runner: 5xx
// answers beyond the SDK's attempts fail attempts that the status reports,
// the Runner retries until the address is held, and the credentials
// appear in no error and no log line.
func TestRunnerRetriesAndReports(t *testing.T) {
	f := newFakeEC2(t)
	f.Fail["DescribeAddresses"] = []int{500, 500, 500} // the SDK gives up after 3 attempts
	f.Fail["AssociateAddress"] = []int{429}
	var log bytes.Buffer
	m := newMode(t, f, Config{Region: "eu-central-1", InstanceID: "i-0aaaa", EIP: "eipalloc-0123"}, &log)
	l := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: m, Log: l, Backoff: vip.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, OpTimeout: 5 * time.Second})
	defer r.Close(time.Second)
	if _, err := r.Claim(theVIP); err != nil {
		t.Fatal(err)
	}
	errs := viptest.WaitHeld(t, r)
	if held, err := r.Held(theVIP); err != nil || !held {
		t.Fatalf("runner held: %v %v", held, err)
	}
	if got := f.state(); got != "eni-aaaa eni-aaaa/10.0.1.100" {
		t.Fatalf("after acquire: %s", got)
	}
	if len(errs) == 0 || !strings.Contains(errs[0], "500") {
		t.Fatalf("the failed attempt was not reported: %q", errs)
	}

	// A hanging API: the attempt ends at the op timeout; Claim returns at once.
	h := newFakeEC2(t)
	h.Slow["DescribeNetworkInterfaces"] = true
	r2 := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: newMode(t, h, Config{Region: "eu-central-1", InstanceID: "i-0aaaa"}, &log), Log: l,
		Backoff: vip.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, OpTimeout: 100 * time.Millisecond})
	defer r2.Close(time.Second)
	start := time.Now()
	if _, err := r2.Claim(theVIP); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Claim took %v: a slow API stalled the caller", d)
	}
	waitFor(t, func() bool { return strings.Contains(r2.Status().Error, "deadline exceeded") })
	errs = append(errs, r2.Status().Error)

	f.set(func(f *fakeEC2) {
		if len(f.auths) == 0 || !strings.Contains(f.auths[0], testKeyID) {
			t.Errorf("the requests were not signed with the test credentials: %q", f.auths)
		}
	})
	for _, s := range append(errs, log.String()) {
		if strings.Contains(s, testSecret) || strings.Contains(s, testKeyID) {
			t.Fatalf("credentials appear in:\n%s", s)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, "condition", testutil.Holds(cond))
}
