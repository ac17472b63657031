// SutazAI web UI helpers: drafts (sessionStorage, drafts only — never credentials), theme preference, code copy,
// keyboard shortcuts. Loaded once; Blazor calls window.sutazai.* through JS interop.
(function () {
    "use strict";
    const draftPrefix = "sutazai.draft:";

    window.sutazai = {
        loadDraft: function (key) {
            try { return sessionStorage.getItem(draftPrefix + key) || ""; } catch { return ""; }
        },
        saveDraft: function (key, text) {
            try {
                if (text) sessionStorage.setItem(draftPrefix + key, text); else sessionStorage.removeItem(draftPrefix + key);
            } catch { /* storage full or disabled: the draft lives only in the page */ }
        },
        clearDraft: function (key) {
            try { sessionStorage.removeItem(draftPrefix + key); } catch { }
        },
        themePreference: function () {
            try { return localStorage.getItem("sutazai.theme") || ""; } catch { return ""; }
        },
        setThemePreference: function (value) {
            try { localStorage.setItem("sutazai.theme", value); } catch { }
            document.documentElement.dataset.theme = value;
        },
        copyText: async function (text) {
            await navigator.clipboard.writeText(text);
        },
        setValue: function (id, text) {
            const el = document.getElementById(id);
            if (el) el.value = text;
        },
        focus: function (id) {
            const el = document.getElementById(id);
            if (el) el.focus();
        },
        download: function (fileName, contentType, text) {
            const blob = new Blob([text], { type: contentType });
            const url = URL.createObjectURL(blob);
            const a = document.createElement("a");
            a.href = url;
            a.download = fileName;
            document.body.appendChild(a);
            a.click();
            a.remove();
            setTimeout(() => URL.revokeObjectURL(url), 1000);
        },
        // Called by the layout once the circuit has rendered interactively (tests and styles can rely on it).
        ready: function () {
            document.documentElement.dataset.interactive = "true";
        },
        scrollToBottom: function (id) {
            const el = document.getElementById(id);
            if (el) el.scrollTop = el.scrollHeight;
        },
    };

    // Every keystroke in a composer is kept, so a dropped circuit or a reload never loses a half-typed message.
    document.addEventListener("input", function (e) {
        const el = e.target;
        if (el instanceof HTMLTextAreaElement && el.dataset.draftKey) window.sutazai.saveDraft(el.dataset.draftKey, el.value);
    });

    // Code blocks rendered from Markdown carry a copy button (no inline handlers: the page's CSP allows none needed).
    document.addEventListener("click", async function (e) {
        const button = e.target instanceof Element ? e.target.closest("button.copy-code") : null;
        if (!button) return;
        const pre = button.parentElement ? button.parentElement.querySelector("pre") : null;
        if (!pre) return;
        try {
            await navigator.clipboard.writeText(pre.innerText);
            button.textContent = "Copied";
        } catch {
            button.textContent = "Copy failed";
        }
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });

    function click(id) {
        const el = document.getElementById(id);
        if (el && !el.disabled) { el.click(); return true; }
        return false;
    }

    // Shortcuts: Enter sends (Shift+Enter: new line), Escape stops a reply, Ctrl/Cmd+Shift+O starts a new chat,
    // Ctrl/Cmd+K focuses the conversation search.
    document.addEventListener("keydown", function (e) {
        const target = e.target;
        const mod = e.ctrlKey || e.metaKey;
        if (target instanceof HTMLTextAreaElement && target.id === "composer" && e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            click("send-button");
            return;
        }
        if (e.key === "Escape" && click("stop-button")) { e.preventDefault(); return; }
        if (mod && e.shiftKey && (e.key === "O" || e.key === "o")) { e.preventDefault(); click("new-chat"); return; }
        if (mod && (e.key === "k" || e.key === "K")) {
            const search = document.getElementById("conversation-search");
            if (search) { e.preventDefault(); search.focus(); }
        }
    });

})();
