package main

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/tasks"
)

// metrics are served on the admin listener only. Labels are low-cardinality
// by construction: status codes, httperr kinds, task outcomes.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	rejections   *prometheus.CounterVec
	tasks        *prometheus.CounterVec
	chatMessages prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stormcellar_http_requests_total",
			Help: "Requests answered by the public listener, by status code.",
		}, []string{"code"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stormcellar_http_rejections_total",
			Help: "Error responses written through httperr, by kind and status (413 body_too_large, 429 rate_limit, 403 origin/xsrf, 503/504 timeout, 500 panic…).",
		}, []string{"kind", "code"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stormcellar_tasks_total",
			Help: "Background tasks that ended, by outcome (a panic is recovered and counted here).",
		}, []string{"outcome"}),
		chatMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stormcellar_chat_messages_total",
			Help: "Chat messages accepted and broadcast.",
		}),
	}
	m.reg.MustRegister(m.requests, m.rejections, m.tasks, m.chatMessages,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// gauges registers the values read from the running service.
func (m *metrics) gauges(a *app) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stormcellar_websockets_open",
			Help: "Open chat WebSocket connections.",
		}, func() float64 { return float64(a.guard.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stormcellar_connections_open",
			Help: "Open connections of the public listener, hijacked ones included.",
		}, func() float64 { return float64(a.srv.OpenConns()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "stormcellar_connections_refused_total",
			Help: "Connections reset because a connection cap was reached.",
		}, func() float64 { return float64(a.srv.RefusedConns()) }),
	)
}

// rejection is the httperr observer: one call per error response.
func (m *metrics) rejection(ev httperr.Event) {
	m.rejections.WithLabelValues(string(ev.Kind), strconv.Itoa(ev.Status)).Inc()
}

// task is the tasks observer.
func (m *metrics) task(ev tasks.Event) {
	m.tasks.WithLabelValues(string(ev.Outcome)).Inc()
}

// count counts every response by status, using the commit-tracking writer
// every stormcellar middleware shares (no second wrapper).
func (m *metrics) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, w, r := reqstate.Ensure(w, r)
		defer func() {
			code := st.Writer().Status()
			switch {
			case st.Writer().Hijacked():
				code = http.StatusSwitchingProtocols
			case code == 0:
				code = http.StatusOK
			}
			m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
		}()
		next.ServeHTTP(w, r)
	})
}

func (a *app) adminHandler() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, http.StatusNotFound) })
	r.Get("/metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	return middleware.Chain(
		httperr.Install(httperr.Options{Logger: a.log}),
		middleware.Recover,
		middleware.MaxURLLength(middleware.MaxURLLengthOptions{}),
	)(r)
}
