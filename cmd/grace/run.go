package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/grace-coaching/grace/migrations"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/people"
	"github.com/grace-coaching/grace/models/seed"
)

const usage = `usage: grace <command>

  serve                 migrate, then serve the API (and the email workers unless WORKER=off)
  worker                run the workers (email outbox, drip, public-form tasks) alone
  migrate up|down|status
  seed                  migrate, then create the Say No With Grace workshop and an admin (idempotent)
  coach create --email E --name N --role admin|coach --password-stdin
  reflections-key       print a new random REFLECTIONS_KEY value (id:base64)

Configuration comes from the environment; see .env.example.`

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, usage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	if cfg.Env == EnvDev {
		log.Warn(devModeNotice(cfg))
	}

	switch args[0] {
	case "serve":
		return serve(ctx, cfg, log)
	case "worker":
		return worker(ctx, cfg, log)
	case "migrate":
		return migrate(ctx, cfg, log, args[1:], stdout)
	case "seed":
		a, err := openApp(ctx, cfg, log, true)
		if err != nil {
			return err
		}
		defer a.Close()
		return seed.Run(ctx, a.svc, stdout)
	case "coach":
		return coachCommand(ctx, cfg, log, args[1:], stdin, stdout)
	case "reflections-key":
		// The id is the month it was made, so a rotation's keys sort.
		fmt.Fprintln(stdout, journal.NewMasterKey(time.Now().UTC().Format("2006-01")).String())
		return nil
	}
	return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
}

// serve runs until ctx is cancelled (SIGINT or SIGTERM), then shuts down
// gracefully: in-flight requests finish and the worker stops between messages.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := openApp(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	if cfg.Worker {
		if err := a.startWorker(); err != nil {
			a.Close()
			return err
		}
	} else {
		log.Info("email workers off (WORKER=off): run `grace worker` to deliver email")
	}
	if err := a.startHTTP(); err != nil {
		a.Close()
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return a.Close()
}

// worker delivers email until ctx is cancelled, for scaling it apart from
// the API.
func worker(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := openApp(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.ready(ctx); err != nil {
		return fmt.Errorf("database not ready (run `grace migrate up`): %w", err)
	}
	runWorkers, err := a.newWorkers()
	if err != nil {
		return err
	}
	log.Info("email worker, drip worker, task worker and hold sweeper started")
	return runWorkers(ctx)
}

func migrate(ctx context.Context, cfg Config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: grace migrate up|down|status")
	}
	a, err := openApp(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer a.Close()
	sqlDB, err := a.db.DB()
	if err != nil {
		return err
	}
	p, err := migrations.NewProvider(sqlDB)
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		if err := migrations.Up(ctx, sqlDB); err != nil {
			return err
		}
		v, err := p.GetDBVersion(ctx)
		fmt.Fprintf(stdout, "schema at version %d\n", v)
		return err
	case "down":
		res, err := p.Down(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %s\n", res.Source.Path)
		return nil
	case "status":
		status, err := p.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range status {
			applied := "pending"
			if s.State == "applied" {
				applied = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%-40s %s\n", s.Source.Path, applied)
		}
		return nil
	}
	return fmt.Errorf("unknown migrate command %q: want up, down or status", args[0])
}

// coachCommand creates a coach from the command line. The password comes on
// stdin so it never sits in shell history or the process list.
func coachCommand(ctx context.Context, cfg Config, log *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: grace coach create --email E --name N --role admin|coach --password-stdin")
	}
	fs := flag.NewFlagSet("coach create", flag.ContinueOnError)
	fs.SetOutput(stdout)
	email := fs.String("email", "", "the coach's email")
	name := fs.String("name", "", "the coach's name")
	role := fs.String("role", "coach", "admin or coach")
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if !*fromStdin {
		return errors.New("coach create: pass --password-stdin and the password on standard input")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	a, err := openApp(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer a.Close()
	c, err := a.svc.People.CreateCoach(ctx, people.CreateCoachInput{Email: *email, Name: *name, Role: people.Role(*role), Password: password})
	if err != nil {
		if de, ok := models.AsError(err); ok {
			msg := de.Message
			for _, f := range de.Fields {
				msg += fmt.Sprintf("\n  %s: %s", f.Field, f.Message)
			}
			return fmt.Errorf("coach create: %s", msg)
		}
		return err
	}
	fmt.Fprintf(stdout, "created %s coach %s <%s> (id %s)\n", c.Role, c.Name, c.Email, c.ID)
	return nil
}
