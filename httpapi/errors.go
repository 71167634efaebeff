package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"syscall"

	"github.com/raftguard/raftguard/fsm"
)

// Errors a Backend returns that the API maps to statuses.
var (
	// ErrNotLeader: this node is not the leader (the API forwards or answers 503).
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: no leader is known or reachable.
	ErrNoLeader = errors.New("no leader")
	// ErrLeadershipLost: leadership moved while the change was in flight;
	// it may or may not have been applied. It is also an ErrNotLeader: the
	// API retries on the new leader (handlers are safe to repeat).
	ErrLeadershipLost = fmt.Errorf("%w: leadership lost while the change was in flight", ErrNotLeader)
	// ErrTimeout: the cluster did not answer in time; the outcome is unknown.
	ErrTimeout = errors.New("timed out")
	// ErrShutdown: this node is shutting down.
	ErrShutdown = errors.New("node shutting down")
	// ErrIsLeader: the operation cannot apply to the leader itself.
	ErrIsLeader = errors.New("is the leader")
	// ErrUnauthorized: a missing or wrong token.
	ErrUnauthorized = errors.New("unauthorized")
)

// apiError is an error with an HTTP status and a stable code.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// toAPIError maps an error from the backend or the state machine to a status
// and code. This is the one place where errors are translated.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, fsm.ErrMalformedCommand):
		return &apiError{http.StatusBadRequest, "invalid", err.Error()}
	case errors.Is(err, fsm.ErrNotFound):
		return &apiError{http.StatusNotFound, "not_found", err.Error()}
	case errors.Is(err, fsm.ErrDuplicateName):
		return &apiError{http.StatusConflict, "duplicate_name", err.Error()}
	case errors.Is(err, fsm.ErrDuplicateKey):
		return &apiError{http.StatusConflict, "duplicate_key", err.Error()}
	case errors.Is(err, fsm.ErrAddressInUse):
		return &apiError{http.StatusConflict, "address_in_use", err.Error()}
	case errors.Is(err, fsm.ErrOverlap):
		return &apiError{http.StatusConflict, "overlap", err.Error()}
	case errors.Is(err, fsm.ErrNodeIDInUse):
		return &apiError{http.StatusConflict, "node_id_in_use", err.Error()}
	case errors.Is(err, fsm.ErrNodeAddressInUse):
		return &apiError{http.StatusConflict, "node_address_in_use", err.Error()}
	case errors.Is(err, fsm.ErrPoolExhausted):
		return &apiError{http.StatusUnprocessableEntity, "pool_exhausted", err.Error()}
	case errors.Is(err, fsm.ErrUpgradeRequired):
		return &apiError{http.StatusConflict, "upgrade_required", err.Error()}
	case errors.Is(err, fsm.ErrNotInitialized):
		return &apiError{http.StatusServiceUnavailable, "not_initialized", err.Error()}
	case errors.Is(err, fsm.ErrAlreadyInitialized):
		return &apiError{http.StatusConflict, "already_initialized", err.Error()}
	case errors.Is(err, ErrLeadershipLost):
		return &apiError{http.StatusServiceUnavailable, "leadership_lost", "leadership moved while the change was in flight, so it may or may not have been applied; retry with the same request (creates are idempotent)"}
	case errors.Is(err, ErrIsLeader):
		return &apiError{http.StatusConflict, "is_leader", err.Error()}
	case errors.Is(err, ErrShutdown):
		return &apiError{http.StatusServiceUnavailable, "shutting_down", "this node is shutting down; ask another node"}
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		return &apiError{http.StatusServiceUnavailable, "no_leader", "no leader is reachable; retry shortly"}
	case errors.Is(err, ErrTimeout):
		return &apiError{http.StatusServiceUnavailable, "timeout", "the cluster did not answer in time; retry with the same request (creates are idempotent)"}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// The leader could not append to its Raft log, so nothing was
		// committed; it has stepped down and a node with disk space leads.
		return &apiError{http.StatusServiceUnavailable, "storage_full", "the leader's disk is full, so the change was not written; leadership moves to another node: retry"}
	case errors.Is(err, ErrUnauthorized):
		return &apiError{http.StatusUnauthorized, "unauthorized", "missing or invalid token"}
	}
	return &apiError{http.StatusInternalServerError, "internal", err.Error()}
}

func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	var ra *retryAfterError
	switch {
	case errors.As(err, &ra):
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.after)))
	case ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	var body ErrorBody
	body.Error.Code, body.Error.Message = ae.Code, ae.Message
	writeJSON(w, ae.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
