// The page's live view (deepfake_detect/live/web.py): a camera (getUserMedia) or a shared
// window, tab or screen (getDisplayMedia) sent to the server as JPEG frames, one at a time and at
// most `fps` a second; each answer's faces are boxed with their person number and P(fake), each
// person gets a line, a verdict and a P(fake) timeline, and a banner says when one turns FAKE.
// Loaded with the page's CSP nonce; it fetches only this server's /api/live/ routes.
"use strict";
(function () {
  var video = document.getElementById("video"), overlay = document.getElementById("overlay");
  var statusBox = document.getElementById("status"), errorBox = document.getElementById("live-error");
  var banner = document.getElementById("banner"), list = document.getElementById("persons");
  var buttons = {camera: document.getElementById("camera"), screen: document.getElementById("screen"),
                 stop: document.getElementById("stop")};
  var grab = document.createElement("canvas");
  var live = null;  // {session, fps, width, window, threshold, stream, started, timer, inFlight, history}

  function showError(text) { errorBox.textContent = text; errorBox.hidden = !text; }

  function post(url, body) {
    return fetch(url, {method: "POST", body: body || null, credentials: "same-origin",
                       headers: body ? {"Content-Type": "image/jpeg"} : {}})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          data.httpStatus = response.status; return data;
        });
      });
  }

  function start(kind) {
    if (live) stop();
    showError("");
    var media = navigator.mediaDevices;
    if (!media || !(kind === "camera" ? media.getUserMedia : media.getDisplayMedia)) {
      showError("This browser gives pages the camera and screen sharing only on 127.0.0.1, localhost or over HTTPS.");
      return;
    }
    var asked = kind === "camera" ? media.getUserMedia({video: true, audio: false})
                                  : media.getDisplayMedia({video: true, audio: false});
    asked.then(function (stream) {
      return post("/api/live/start").then(function (answer) {
        if (answer.httpStatus !== 200) {
          stream.getTracks().forEach(function (track) { track.stop(); });
          throw new Error(answer.error || "The live view could not start.");
        }
        live = {session: answer.session, fps: answer.fps, width: answer.width, window: answer.window_seconds,
                threshold: answer.threshold, stream: stream, started: performance.now(), inFlight: false,
                history: {}, sent: 0, answered: 0};
        video.srcObject = stream;
        stream.getVideoTracks()[0].addEventListener("ended", stop);  // "Stop sharing" in the browser
        live.timer = setInterval(sendFrame, 1000 / live.fps);
        buttons.stop.disabled = false;
        statusBox.textContent = "Starting...";
      });
    }).catch(function (error) { showError(error.message || String(error)); });
  }

  function sendFrame() {
    if (!live || live.inFlight || video.readyState < 2 || !video.videoWidth) return;
    var scale = Math.min(1, live.width / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    var t = (performance.now() - live.started) / 1000, session = live.session, sentAt = performance.now();
    live.inFlight = true;
    grab.toBlob(function (blob) {
      if (!live || live.session !== session) return;
      live.sent += 1;
      post("/api/live/frame?session=" + encodeURIComponent(session) + "&t=" + t.toFixed(3), blob)
        .then(function (answer) {
          if (!live || live.session !== session) return;
          live.inFlight = false;
          if (answer.httpStatus === 200) {
            live.answered += 1;
            show(answer, performance.now() - sentAt);
          } else if (answer.httpStatus === 404 || answer.httpStatus === 401) {
            showError(answer.error || "The live view has ended."); stop();
          } else {
            statusBox.textContent = "Frame skipped: " + (answer.error || answer.httpStatus);
          }
        })
        .catch(function () { if (live) { live.inFlight = false; statusBox.textContent = "The server did not answer."; } });
    }, "image/jpeg", 0.85);
  }

  function show(answer, latency) {
    var update = answer.update;
    overlay.width = answer.width; overlay.height = answer.height;
    var pen = overlay.getContext("2d");
    pen.clearRect(0, 0, overlay.width, overlay.height);
    pen.lineWidth = Math.max(2, overlay.width / 320);
    pen.font = Math.max(12, Math.round(overlay.width / 40)) + "px system-ui, sans-serif";
    answer.faces.forEach(function (face) {
      var fake = face.p_fake > 1 - live.threshold, b = face.box;
      var label = "person " + face.person + "  P(fake) " + face.p_fake.toFixed(2);
      var size = parseInt(pen.font, 10), top = Math.max(0, b[1] - size - 6);
      pen.strokeStyle = pen.fillStyle = fake ? "#e02020" : "#20b040";
      pen.strokeRect(b[0], b[1], b[2], b[3]);
      pen.fillRect(b[0], top, pen.measureText(label).width + 8, size + 6);  // a label on its own colour
      pen.fillStyle = "#fff";
      pen.fillText(label, b[0] + 4, top + size + 1);
    });
    update.persons.forEach(function (person) {
      var points = live.history[person.person] = live.history[person.person] || [];
      points.push([update.time, person.p_fake_now]);
      while (points.length && points[0][0] < update.time - 2 * live.window) points.shift();
    });
    drawPersons(update);
    var fake = update.persons.filter(function (p) { return p.verdict === "FAKE"; });
    banner.hidden = !fake.length;
    if (fake.length) {
      banner.textContent = fake.map(function (p) {
        return "person " + p.person + " looks fake since " + clock(p.fake_since);
      }).join("; ");
    }
    statusBox.textContent = "Verdict: " + (update.verdict || "no face") + " \u00b7 " + update.time.toFixed(1) +
      " s \u00b7 frames scored " + live.answered + " \u00b7 round trip " + Math.round(latency) + " ms";
    statusBox.className = update.verdict || "";
  }

  function clock(seconds) {
    seconds = Math.max(0, seconds || 0);
    var minutes = Math.floor(seconds / 60), rest = (seconds - 60 * minutes).toFixed(1);
    return minutes + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function drawPersons(update) {
    var shown = {};
    update.persons.forEach(function (person) {
      shown[person.person] = true;
      var item = document.getElementById("person-" + person.person);
      if (!item) {
        item = document.createElement("li"); item.id = "person-" + person.person;
        item.appendChild(document.createElement("span"));
        var chart = document.createElement("canvas"); chart.width = 480; chart.height = 60;
        item.appendChild(chart); list.appendChild(item);
      }
      var label = item.firstChild;
      label.textContent = "person " + person.person + ": " + person.verdict + " \u00b7 P(fake) " +
        person.p_fake.toFixed(2) + " over the window, " + person.p_fake_now.toFixed(2) + " now";
      label.className = person.verdict;
      drawTimeline(item.lastChild, live.history[person.person], update.time);
    });
    Array.prototype.slice.call(list.children).forEach(function (item) {
      item.hidden = !shown[item.id.slice(7)];
    });
  }

  function drawTimeline(chart, points, now) {
    var pen = chart.getContext("2d"), w = chart.width, h = chart.height, span = 2 * live.window;
    pen.clearRect(0, 0, w, h);
    var cut = h * live.threshold;  // P(fake) = 1 - threshold, drawn from the top
    pen.strokeStyle = "#999"; pen.setLineDash([4, 4]); pen.beginPath(); pen.moveTo(0, cut); pen.lineTo(w, cut); pen.stroke();
    pen.setLineDash([]); pen.strokeStyle = "#333"; pen.beginPath();
    points.forEach(function (point, index) {
      var x = w - (now - point[0]) / span * w, y = h - point[1] * h;
      if (index) pen.lineTo(x, y); else pen.moveTo(x, y);
    });
    pen.stroke();
  }

  function stop() {
    if (!live) return;
    var ending = live;
    live = null;
    clearInterval(ending.timer);
    ending.stream.getTracks().forEach(function (track) { track.stop(); });
    video.srcObject = null;
    navigator.sendBeacon("/api/live/end?session=" + encodeURIComponent(ending.session));
    buttons.stop.disabled = true;
    statusBox.textContent = "Stopped after " + ending.answered + " frames.";
  }

  buttons.camera.addEventListener("click", function () { start("camera"); });
  buttons.screen.addEventListener("click", function () { start("screen"); });
  buttons.stop.addEventListener("click", stop);
  window.addEventListener("pagehide", stop);  // the tab closes or navigates away: the session ends
})();
