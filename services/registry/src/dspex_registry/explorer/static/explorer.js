// The run explorer's own script: the operator's token for actions (kept for this tab only,
// sent as a header so that no other site can act with it), and error messages.
(function () {
  "use strict";
  const KEY = "dspex-explorer-token";

  function flash(text, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = text;
    box.dataset.kind = kind || "info";
    box.hidden = !text;
  }

  function showTokenState() {
    const state = document.getElementById("token-state");
    if (state) state.textContent = sessionStorage.getItem(KEY) ? "token set" : "read-only";
  }

  document.addEventListener("htmx:configRequest", function (e) {
    const token = sessionStorage.getItem(KEY);
    if (token && e.detail.verb !== "get") {
      e.detail.headers["Authorization"] = "Bearer " + token;
    }
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    const xhr = e.detail.xhr;
    if (!xhr || e.detail.requestConfig.verb === "get") return;
    let detail = xhr.statusText;
    try {
      const body = JSON.parse(xhr.responseText);
      detail = body.detail || (body.action ? body.action + " requested" : detail);
    } catch (err) {
      /* not JSON: keep the status text */
    }
    flash(String(detail), e.detail.successful ? "info" : "error");
  });

  document.addEventListener("submit", function (e) {
    if (e.target.id !== "token-form") return;
    e.preventDefault();
    const input = document.getElementById("token-input");
    if (input.value) {
      sessionStorage.setItem(KEY, input.value);
    } else {
      sessionStorage.removeItem(KEY);
    }
    input.value = "";
    showTokenState();
    flash(sessionStorage.getItem(KEY) ? "token kept for this tab" : "token forgotten", "info");
  });

  document.addEventListener("DOMContentLoaded", showTokenState);
})();
