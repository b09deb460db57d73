// Sign-in: posts JSON to /login and goes where the user was heading.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const err = document.getElementById("login-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const r = await fetch("/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      }),
    });
    if (r.ok) {
      const me = await r.json();
      location.href = sameSite(new URLSearchParams(location.search).get("next")) ||
        (me.role === "organiser" ? "/organiser" : "/");
      return;
    }
    let msg = t("login_failed");
    if (r.status === 429) msg = t("login_limited") + " " + (r.headers.get("Retry-After") || "?") + " " + t("seconds");
    err.textContent = msg;
    err.hidden = false;
  });
});

// `next` as the browser will read it: "/\host" and "/<tab>/host" mean "//host", another
// site. Only a path of this very origin is followed.
function sameSite(next) {
  if (!next || !next.startsWith("/")) return null;
  let url;
  try { url = new URL(next, location.origin); } catch { return null; }
  return url.origin === location.origin ? url.pathname + url.search + url.hash : null;
}
