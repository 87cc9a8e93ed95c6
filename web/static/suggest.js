/* Suggestions under the search box: the ARIA 1.2 combobox pattern (list autocomplete).
 * Down/Up move through the list, Enter chooses, Escape closes, Tab leaves.
 * Without JavaScript the search box still works: this only adds to it. */
(function () {
  "use strict";
  var script = document.currentScript;
  var input = document.getElementById("q");
  if (!input || !window.fetch || !input.form) { return; }
  var url = (script && script.getAttribute("data-suggest-url")) || "/api/suggest";
  var form = input.form;
  var list = document.createElement("ul");
  var status = document.createElement("div");
  var items = [];
  var active = -1;
  var timer = null;
  var controller = null;
  var lastAsked = null;

  list.id = "q-suggestions";
  list.className = "suggestions";
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "検索候補");
  list.hidden = true;
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", list.id);
  input.setAttribute("autocomplete", "off");
  // the list hangs under the box (not under the button): box and list share a wrapper
  var wrap = document.createElement("div");
  wrap.className = "suggest-wrap";
  input.parentNode.insertBefore(wrap, input);
  wrap.appendChild(input);
  wrap.appendChild(list);
  form.appendChild(status);

  function isOpen() { return !list.hidden; }

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function open() {
    if (!items.length) { return; }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function highlight(i) {
    var options = list.children;
    for (var k = 0; k < options.length; k++) {
      options[k].setAttribute("aria-selected", k === i ? "true" : "false");
    }
    active = i;
    if (i >= 0) {
      input.setAttribute("aria-activedescendant", options[i].id);
      options[i].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function choose(item) {
    close();
    if (item.url) {
      window.location.href = item.url;
      return;
    }
    input.value = item.text;
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  function render(found) {
    items = found;
    list.textContent = "";
    found.forEach(function (item, i) {
      var li = document.createElement("li");
      var label = document.createElement("span");
      var kind = document.createElement("span");
      li.id = "q-suggestion-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.className = "suggestion kind-" + item.kind;
      label.className = "label";
      label.textContent = item.label;          // text only: never parsed as HTML
      kind.className = "kind";
      kind.textContent = item.kind_label;
      li.appendChild(label);
      li.appendChild(kind);
      // mousedown, not click: the box must not lose focus (and close the list) first
      li.addEventListener("mousedown", function (event) {
        event.preventDefault();
        choose(item);
      });
      li.addEventListener("mousemove", function () { if (active !== i) { highlight(i); } });
      list.appendChild(li);
    });
    active = -1;
    if (found.length && document.activeElement === input) {
      open();
      status.textContent = "候補が " + found.length + " 件あります。上下の矢印キーで選べます。";
    } else {
      close();
      status.textContent = "";
    }
  }

  function ask() {
    var q = input.value;
    if (q === lastAsked) { open(); return; }
    lastAsked = q;
    if (!q.trim()) { render([]); return; }
    if (controller) { controller.abort(); }
    controller = window.AbortController ? new AbortController() : null;
    fetch(url + "?q=" + encodeURIComponent(q), {
      headers: { "Accept": "application/json" },
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      return response.ok ? response.json() : { suggestions: [] };
    }).then(function (data) {
      if (input.value === q) { render(data.suggestions || []); }
    }).catch(function () { /* offline or aborted: the box keeps working */ });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(ask, 120);
  });

  input.addEventListener("keydown", function (event) {
    if (event.isComposing || event.keyCode === 229) { return; }  // an IME is converting
    if (event.key === "ArrowDown" || event.key === "Down") {
      event.preventDefault();
      if (!isOpen()) {
        if (input.value !== lastAsked) { ask(); return; }
        open();
        if (isOpen()) { highlight(0); }
        return;
      }
      highlight(active + 1 >= items.length ? 0 : active + 1);
    } else if (event.key === "ArrowUp" || event.key === "Up") {
      if (!isOpen()) { return; }
      event.preventDefault();
      highlight(active <= 0 ? items.length - 1 : active - 1);
    } else if (event.key === "Enter") {
      if (isOpen() && active >= 0) {
        event.preventDefault();
        choose(items[active]);
      } else {
        close();
      }
    } else if (event.key === "Escape" || event.key === "Esc") {
      if (isOpen()) {
        event.preventDefault();
        close();
      }
    } else if (event.key === "Tab") {
      close();
    }
  });

  input.addEventListener("blur", function () { close(); });
})();
