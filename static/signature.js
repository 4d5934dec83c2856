// Signature pads: draw with finger, stylus or mouse; the PNG goes into the form's hidden field on submit.
(function () {
  "use strict";
  function setUp(pad) {
    var canvas = pad.querySelector("canvas");
    var field = pad.parentElement.querySelector('input[name="' + pad.dataset.signature + '"]');
    var ctx = canvas.getContext("2d");
    var drawing = false, drawn = false;
    pad.hidden = false;
    ctx.lineWidth = 3; ctx.lineCap = "round"; ctx.strokeStyle = "#0b0c0c";
    if (field.value) {  // a form returned after a refusal keeps the signature
      var img = new Image();
      img.onload = function () { ctx.drawImage(img, 0, 0); drawn = true; };
      img.src = field.value;
    }
    function point(e) {
      var r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
    }
    canvas.addEventListener("pointerdown", function (e) {
      drawing = true; canvas.setPointerCapture(e.pointerId);
      var p = point(e); ctx.beginPath(); ctx.moveTo(p[0], p[1]);
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!drawing) return;
      var p = point(e); ctx.lineTo(p[0], p[1]); ctx.stroke(); drawn = true;
    });
    ["pointerup", "pointercancel"].forEach(function (t) {
      canvas.addEventListener(t, function () {
        if (drawing && drawn) field.value = canvas.toDataURL("image/png");
        drawing = false;
      });
    });
    pad.querySelector("[data-clear]").addEventListener("click", function () {
      ctx.clearRect(0, 0, canvas.width, canvas.height); drawn = false; field.value = "";
    });
  }
  function init(root) {
    root.querySelectorAll(".signature-pad[data-signature]").forEach(function (pad) {
      if (!pad.dataset.ready) { pad.dataset.ready = "1"; setUp(pad); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (e) { init(e.target); });
})();
