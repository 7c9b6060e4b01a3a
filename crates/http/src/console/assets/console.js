// mediavault console: the only script, served from the binary (CSP: script-src 'self').
// It counts down the idle timeout and the step-up window, asks before destructive actions, and copies one-time keys.
(function () {
  'use strict';
  var body = document.body;
  var idle = parseInt(body.getAttribute('data-idle') || '0', 10);
  var out = document.getElementById('idle-left');
  if (idle > 0 && out) {
    var end = Date.now() + idle * 1000;
    var tick = function () {
      var s = Math.max(0, Math.round((end - Date.now()) / 1000));
      out.textContent = Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
      if (s <= 0) {
        window.location.href = '/console/login?expired=1';
        return;
      }
      window.setTimeout(tick, 1000);
    };
    tick();
  }
  // The step-up window: count it down; at its end the page reloads so the forms ask for a code.
  var su = document.getElementById('step-up');
  var suOut = document.getElementById('step-up-left');
  var suLeft = su ? parseInt(su.getAttribute('data-left') || '0', 10) : 0;
  if (suLeft > 0 && suOut) {
    var suEnd = Date.now() + suLeft * 1000;
    var suTick = function () {
      var s = Math.max(0, Math.round((suEnd - Date.now()) / 1000));
      suOut.textContent = Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
      if (s <= 0) {
        window.location.reload();
        return;
      }
      window.setTimeout(suTick, 1000);
    };
    suTick();
  }
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) {
      if (!window.confirm(f.getAttribute('data-confirm'))) {
        e.preventDefault();
      }
    });
  });
  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    b.addEventListener('click', function () {
      var el = document.getElementById(b.getAttribute('data-copy'));
      if (el && navigator.clipboard) {
        navigator.clipboard.writeText(el.textContent);
      }
    });
  });
})();
