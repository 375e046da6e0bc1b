// Command pulumi-language-python is cgkit's Python language host for the Pulumi CLI.
//
// Why a shim: the Python language host's own Go module is not served by the Go module proxy here,
// so tools/build-toolchain builds the last host that lived inside github.com/pulumi/pulumi/sdk/v3
// (v3.68.0) into libexec/. That host answers Run, GetRequiredPlugins and the rest of the protocol
// the current CLI speaks, but for RunPlugin (how the CLI starts a Python policy pack) it reads the
// deprecated Pwd/Program fields, which the current CLI no longer fills: the pack would not start.
//
// That host also learns the `virtualenv` runtime option only from a -virtualenv flag, which the
// current CLI no longer passes (it sends options inside requests).
//
// This program starts the v3.68.0 host as a child with the same arguments, plus -virtualenv taken
// from the Pulumi.yaml in its working directory (the CLI starts language hosts in the project
// root), forwards every LanguageRuntime call to it, and implements RunPlugin itself from the
// request's ProgramInfo: it runs `python -u <program directory>/<entry point> <args>` in the
// program directory, using the `virtualenv` runtime option when the pack names one, and streams
// stdout/stderr and the exit code.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"gopkg.in/yaml.v3"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

type shim struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	host pulumirpc.LanguageRuntimeClient
}

func (s *shim) GetRequiredPlugins(ctx context.Context, r *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return s.host.GetRequiredPlugins(ctx, r)
}

func (s *shim) GetRequiredPackages(ctx context.Context, r *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return s.host.GetRequiredPackages(ctx, r)
}

func (s *shim) Run(ctx context.Context, r *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	return s.host.Run(ctx, r)
}

func (s *shim) GetPluginInfo(ctx context.Context, r *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return s.host.GetPluginInfo(ctx, r)
}

func (s *shim) About(ctx context.Context, r *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	return s.host.About(ctx, r)
}

func (s *shim) GetProgramDependencies(ctx context.Context, r *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return s.host.GetProgramDependencies(ctx, r)
}

func (s *shim) InstallDependencies(r *pulumirpc.InstallDependenciesRequest, out grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	in, err := s.host.InstallDependencies(out.Context(), r)
	if err != nil {
		return err
	}
	for {
		msg, err := in.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := out.Send(msg); err != nil {
			return err
		}
	}
}

// python returns the interpreter for a program: <virtualenv>/bin/python when the runtime options
// name a virtualenv (relative to the root directory), else python3 from PATH.
func python(info *pulumirpc.ProgramInfo) string {
	if opts := info.GetOptions(); opts != nil {
		if v, ok := opts.GetFields()["virtualenv"]; ok && v.GetStringValue() != "" {
			venv := v.GetStringValue()
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.GetRootDirectory(), venv)
			}
			return filepath.Join(venv, "bin", "python")
		}
	}
	return "python3"
}

type streamWriter struct {
	send   func(*pulumirpc.RunPluginResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	msg := &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	if w.stderr {
		msg = &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	}
	return len(p), w.send(msg)
}

func (s *shim) RunPlugin(r *pulumirpc.RunPluginRequest, out grpc.ServerStreamingServer[pulumirpc.RunPluginResponse]) error {
	info := r.GetInfo()
	dir := info.GetProgramDirectory()
	if dir == "" {
		dir = r.GetPwd()
	}
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	cmd := exec.CommandContext(out.Context(), python(info), append([]string{"-u", filepath.Join(dir, entry)}, r.GetArgs()...)...)
	cmd.Dir = dir
	cmd.Env = r.GetEnv()
	if len(cmd.Env) == 0 {
		cmd.Env = os.Environ()
	}
	send := make(chan *pulumirpc.RunPluginResponse)
	done := make(chan error, 1)
	go func() {
		var err error
		for msg := range send {
			if err == nil {
				err = out.Send(msg)
			}
		}
		done <- err
	}()
	push := func(m *pulumirpc.RunPluginResponse) error { send <- m; return nil }
	cmd.Stdout = streamWriter{push, false}
	cmd.Stderr = streamWriter{push, true}
	runErr := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) {
		code = exitErr.ExitCode()
	} else if runErr != nil {
		close(send)
		<-done
		return fmt.Errorf("running policy/plugin program in %s with %s: %w", dir, python(info), runErr)
	}
	send <- &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}}
	close(send)
	return <-done
}

// projectVirtualenv returns the absolute `runtime.options.virtualenv` of ./Pulumi.yaml, or "".
func projectVirtualenv() string {
	data, err := os.ReadFile("Pulumi.yaml")
	if err != nil {
		return ""
	}
	var project struct {
		Runtime yaml.Node `yaml:"runtime"`
	}
	if yaml.Unmarshal(data, &project) != nil || project.Runtime.Kind != yaml.MappingNode {
		return ""
	}
	var runtime struct {
		Options struct {
			Virtualenv string `yaml:"virtualenv"`
		} `yaml:"options"`
	}
	if project.Runtime.Decode(&runtime) != nil || runtime.Options.Virtualenv == "" {
		return ""
	}
	venv, err := filepath.Abs(runtime.Options.Virtualenv)
	if err != nil {
		return ""
	}
	return venv
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python (cgkit shim): %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	self, _ = filepath.EvalSymlinks(self)
	inner := filepath.Join(filepath.Dir(self), "..", "libexec", "pulumi-language-python")
	args := os.Args[1:]
	if venv := projectVirtualenv(); venv != "" {
		args = append([]string{"-virtualenv=" + venv}, args...)
	}
	child := exec.Command(inner, args...)
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return fmt.Errorf("starting the v3.68.0 host %s: %w", inner, err)
	}
	lines := bufio.NewReader(stdout)
	port, err := lines.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the inner host's port: %w", err)
	}
	go func() { _, _ = io.Copy(io.Discard, lines) }()

	conn, err := grpc.NewClient("127.0.0.1:"+strings.TrimSpace(port),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(srv, &shim{host: pulumirpc.NewLanguageRuntimeClient(conn)})
	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		srv.Stop()
	}()
	go func() { _ = child.Wait(); srv.Stop() }()
	err = srv.Serve(lis)
	if child.Process != nil {
		_ = child.Process.Kill()
	}
	return err
}
