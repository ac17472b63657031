using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sutazai.Inference.Pull;

namespace Sutazai.Inference.Tests.Pull;

public sealed class ModelDownloaderTests : IAsyncLifetime
{
    private const int Size = 300_000;

    private readonly TestFileServer _server = new();
    private readonly TempDirectory _dest = new();
    private readonly HttpClient _http = new(new SocketsHttpHandler { AllowAutoRedirect = false });
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));

    private CancellationToken Timeout => _timeout.Token;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _http.Dispose();
        _dest.Dispose();
        _timeout.Dispose();
    }

    [Fact]
    public async Task Download_WholeFile_PlacesVerifiedFileAndReportsProgress()
    {
        var content = TestBytes.Gguf(Size, seed: 1);
        _server.Serve("/m/tiny.gguf", content);
        var progress = new RecordingProgress();

        var result = await Downloader().DownloadAsync(Request("/m/tiny.gguf", "tiny.gguf"), progress, Timeout);

        Assert.Equal(new DownloadResult(FinalPath("tiny.gguf"), Size, TestBytes.Sha256(content)), result);
        Assert.Equal(content, await File.ReadAllBytesAsync(result.FilePath));
        Assert.Equal([new RecordedRequest("/m/tiny.gguf", null)], _server.Requests);
        Assert.Equal([FinalPath("tiny.gguf")], _dest.AllFiles());
        var reports = progress.Reports;
        Assert.Equal(new DownloadProgress(0, Size, 0, DownloadStatus.Downloading), reports[0]);
        Assert.All(reports, r => Assert.Equal(Size, r.TotalBytes));
        Assert.Equal(
            reports.Select(r => r.Bytes).Order(),
            reports.Select(r => r.Bytes));
        Assert.Equal(((long)Size, DownloadStatus.Downloading), (reports[^2].Bytes, reports[^2].Status));
        Assert.Equal(new DownloadProgress(Size, Size, 0, DownloadStatus.Verifying), reports[^1]);
    }

    [Fact]
    public async Task Download_ConnectionDroppedMidBody_ResumesWithRangeToAnIdenticalFile()
    {
        var content = TestBytes.Gguf(Size, seed: 2);
        _server.Serve("/drop.gguf", content).DropAtOffset = 100_000;
        var progress = new RecordingProgress();

        var result = await Downloader().DownloadAsync(Request("/drop.gguf", "drop.gguf"), progress, Timeout);

        Assert.Equal([new RecordedRequest("/drop.gguf", null), new RecordedRequest("/drop.gguf", "bytes=100000-")], _server.Requests);
        Assert.Equal(content, await File.ReadAllBytesAsync(FinalPath("drop.gguf")));
        Assert.Equal(new DownloadResult(FinalPath("drop.gguf"), Size, TestBytes.Sha256(content)), result);
        var downloading = progress.Reports.Where(r => r.Status == DownloadStatus.Downloading).Select(r => r.Bytes).ToList();
        Assert.Equal(downloading.Order(), downloading);
        Assert.Contains(100_000L, downloading);
    }

    [Fact]
    public async Task Download_ReadStalls_TreatsItAsDropAndResumes()
    {
        var content = TestBytes.Gguf(Size, seed: 3);
        _server.Serve("/stall.gguf", content).PauseAtOffset = 50_000;
        var options = TestOptions();
        options.ReadTimeout = TimeSpan.FromSeconds(1);

        var result = await Downloader(options).DownloadAsync(Request("/stall.gguf", "stall.gguf"), null, Timeout);

        Assert.Equal([new RecordedRequest("/stall.gguf", null), new RecordedRequest("/stall.gguf", "bytes=50000-")], _server.Requests);
        Assert.Equal(content, await File.ReadAllBytesAsync(result.FilePath));
    }

    [Fact]
    public async Task Download_ServerIgnoresRange_DiscardsPartialAndStartsFromZero()
    {
        var content = TestBytes.Gguf(Size, seed: 4);
        _server.Serve("/norange.gguf", content).IgnoreRange = true;
        WritePartial("norange.gguf", TestBytes.Gguf(5_000, seed: 99));

        var result = await Downloader().DownloadAsync(Request("/norange.gguf", "norange.gguf"), null, Timeout);

        Assert.Equal([new RecordedRequest("/norange.gguf", "bytes=5000-")], _server.Requests);
        Assert.Equal(content, await File.ReadAllBytesAsync(result.FilePath));
        Assert.Equal(TestBytes.Sha256(content), result.Sha256);
    }

    [Fact]
    public async Task Download_ContentRangeDoesNotMatchRequest_RestartsWithoutRange()
    {
        var content = TestBytes.Gguf(Size, seed: 5);
        _server.Serve("/badrange.gguf", content).ContentRangeStart = 0;
        WritePartial("badrange.gguf", content[..5_000]);

        var result = await Downloader().DownloadAsync(Request("/badrange.gguf", "badrange.gguf"), null, Timeout);

        Assert.Equal([new RecordedRequest("/badrange.gguf", "bytes=5000-"), new RecordedRequest("/badrange.gguf", null)], _server.Requests);
        Assert.Equal(content, await File.ReadAllBytesAsync(result.FilePath));
    }

    [Fact]
    public async Task Download_PartialAlreadyComplete_416IsAcceptedAndVerified()
    {
        var content = TestBytes.Gguf(Size, seed: 6);
        _server.Serve("/done.gguf", content);
        WritePartial("done.gguf", content);
        var progress = new RecordingProgress();

        var result = await Downloader().DownloadAsync(
            Request("/done.gguf", "done.gguf") with { ExpectedSha256 = TestBytes.Sha256(content) }, progress, Timeout);

        Assert.Equal([new RecordedRequest("/done.gguf", "bytes=300000-")], _server.Requests);
        Assert.Equal(new DownloadResult(FinalPath("done.gguf"), Size, TestBytes.Sha256(content)), result);
        // The partial prefix is re-hashed in 128 KiB reads; the final check repeats the last report, which is not sent twice.
        Assert.Equal(
            [
                new DownloadProgress(0, Size, 0, DownloadStatus.Verifying),
                new DownloadProgress(131_072, Size, 0, DownloadStatus.Verifying),
                new DownloadProgress(262_144, Size, 0, DownloadStatus.Verifying),
                new DownloadProgress(Size, Size, 0, DownloadStatus.Verifying),
            ],
            progress.Reports);
    }

    [Fact]
    public async Task Download_ExpectedShaDiffers_RejectsAndLeavesNothingBehind()
    {
        var content = TestBytes.Gguf(Size, seed: 7);
        var expected = TestBytes.Sha256(TestBytes.Gguf(Size, seed: 8));
        _server.Serve("/sha.gguf", content);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => Downloader().DownloadAsync(
            Request("/sha.gguf", "sha.gguf") with { ExpectedSha256 = expected.ToUpperInvariant() }, null, Timeout));

        Assert.Equal(ModelDownloadError.ChecksumMismatch, error.Error);
        Assert.Equal($"SHA-256 mismatch: expected {expected}, got {TestBytes.Sha256(content)}.", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_WrongBytesUnderHuggingFaceEtag_RejectsAndLeavesNothingBehind()
    {
        var original = TestBytes.Gguf(Size, seed: 9);
        var corrupted = (byte[])original.Clone();
        corrupted[150_000] ^= 0xFF;
        var file = _server.Serve("/corrupt.gguf", corrupted);
        file.LinkedEtag = TestBytes.Sha256(original);
        file.LinkedSize = Size;

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/corrupt.gguf", "corrupt.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.ChecksumMismatch, error.Error);
        Assert.Equal($"SHA-256 mismatch: expected {TestBytes.Sha256(original)}, got {TestBytes.Sha256(corrupted)}.", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_HuggingFaceHeaders_GiveSizeAndChecksumWithoutContentLength()
    {
        var content = TestBytes.Gguf(Size, seed: 10);
        var file = _server.Serve("/linked.gguf", content);
        file.OmitContentLength = true;
        file.LinkedEtag = TestBytes.Sha256(content).ToUpperInvariant();
        file.LinkedSize = Size;
        var progress = new RecordingProgress();

        var result = await Downloader().DownloadAsync(Request("/linked.gguf", "linked.gguf"), progress, Timeout);

        Assert.Equal(new DownloadResult(FinalPath("linked.gguf"), Size, TestBytes.Sha256(content)), result);
        Assert.Equal(new DownloadProgress(0, Size, 0, DownloadStatus.Downloading), progress.Reports[0]);
    }

    [Fact]
    public async Task Download_HuggingFaceRedirect_FollowsItAndUsesLinkedHeadersFromTheRedirect()
    {
        var content = TestBytes.Gguf(Size, seed: 11);
        var resolve = _server.Serve("/o/r/resolve/main/m.gguf", []);
        resolve.RedirectTo = "/cdn/blob-1";
        resolve.LinkedEtag = TestBytes.Sha256(content);
        resolve.LinkedSize = Size;
        _server.Serve("/cdn/blob-1", content).OmitContentLength = true;
        var progress = new RecordingProgress();

        var result = await Downloader().DownloadAsync(Request("/o/r/resolve/main/m.gguf", "m.gguf"), progress, Timeout);

        Assert.Equal([new RecordedRequest("/o/r/resolve/main/m.gguf", null), new RecordedRequest("/cdn/blob-1", null)], _server.Requests);
        Assert.Equal(new DownloadResult(FinalPath("m.gguf"), Size, TestBytes.Sha256(content)), result);
        Assert.Equal(new DownloadProgress(0, Size, 0, DownloadStatus.Downloading), progress.Reports[0]);
    }

    [Fact]
    public async Task Download_RedirectedBytesDifferFromLinkedEtag_AreRejected()
    {
        var content = TestBytes.Gguf(Size, seed: 12);
        var announced = TestBytes.Sha256(TestBytes.Gguf(Size, seed: 13));
        var resolve = _server.Serve("/o/r/resolve/main/x.gguf", []);
        resolve.RedirectTo = "/cdn/blob-2";
        resolve.LinkedEtag = announced;
        _server.Serve("/cdn/blob-2", content);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/o/r/resolve/main/x.gguf", "x.gguf"), null, Timeout));

        Assert.Equal($"SHA-256 mismatch: expected {announced}, got {TestBytes.Sha256(content)}.", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_NotGguf_IsRejectedAfterTheFirstBytes()
    {
        var html = "<!DOCTYPE html><html><body>Sign in to download</body></html>"u8.ToArray();
        _server.Serve("/page.gguf", html);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/page.gguf", "page.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.NotGguf, error.Error);
        Assert.Equal("Not a GGUF file (magic 3C21444F \"<!DO\").", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_FileShorterThanMagic_IsRejected()
    {
        _server.Serve("/tiny.gguf", "GG"u8.ToArray());

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/tiny.gguf", "tiny.gguf"), null, Timeout));

        Assert.Equal("Not a GGUF file (only 2 bytes).", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_ServerReportsOtherSizeThanExpected_FailsBeforeDownloading()
    {
        _server.Serve("/size.gguf", TestBytes.Gguf(Size, seed: 14));

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => Downloader().DownloadAsync(
            Request("/size.gguf", "size.gguf") with { ExpectedSize = Size + 1 }, null, Timeout));

        Assert.Equal(ModelDownloadError.SizeMismatch, error.Error);
        Assert.Equal("Size mismatch: expected 300001 bytes, server reports 300000 bytes.", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_UnannouncedBodyShorterThanExpected_FailsVerification()
    {
        _server.Serve("/short.gguf", TestBytes.Gguf(Size, seed: 15)).OmitContentLength = true;

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => Downloader().DownloadAsync(
            Request("/short.gguf", "short.gguf") with { ExpectedSize = Size + 10 }, null, Timeout));

        Assert.Equal("Size mismatch: expected 300010 bytes, got 300000 bytes.", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_UnannouncedBodyLongerThanExpected_StopsAtTheLimit()
    {
        _server.Serve("/long.gguf", TestBytes.Gguf(Size, seed: 16)).OmitContentLength = true;

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => Downloader().DownloadAsync(
            Request("/long.gguf", "long.gguf") with { ExpectedSize = Size - 10 }, null, Timeout));

        Assert.Equal("Size mismatch: expected 299990 bytes, server sent more.", error.Message);
        Assert.Empty(_dest.AllFiles());
    }

    [Fact]
    public async Task Download_TwoDifferentFiles_TransferConcurrently()
    {
        var first = TestBytes.Gguf(Size, seed: 17);
        var second = TestBytes.Gguf(Size + 1_000, seed: 18);
        var firstServed = _server.Serve("/a.gguf", first);
        var secondServed = _server.Serve("/b.gguf", second);
        firstServed.PauseAtOffset = 100_000;
        secondServed.PauseAtOffset = 100_000;
        var downloader = Downloader();

        var firstDownload = downloader.DownloadAsync(Request("/a.gguf", "a.gguf"), null, Timeout);
        var secondDownload = downloader.DownloadAsync(Request("/b.gguf", "b.gguf"), null, Timeout);
        await Task.WhenAll(firstServed.Paused, secondServed.Paused).WaitAsync(Timeout);
        firstServed.ReleasePause();
        secondServed.ReleasePause();
        var results = await Task.WhenAll(firstDownload, secondDownload);

        Assert.Equal(new DownloadResult(FinalPath("a.gguf"), Size, TestBytes.Sha256(first)), results[0]);
        Assert.Equal(new DownloadResult(FinalPath("b.gguf"), Size + 1_000, TestBytes.Sha256(second)), results[1]);
        Assert.Equal(first, await File.ReadAllBytesAsync(FinalPath("a.gguf")));
        Assert.Equal(second, await File.ReadAllBytesAsync(FinalPath("b.gguf")));
    }

    [Fact]
    public async Task Download_SameFileTwiceAtOnce_SecondWaitsThenBothGetTheSameFile()
    {
        var content = TestBytes.Gguf(Size, seed: 19);
        var served = _server.Serve("/same.gguf", content);
        served.PauseAtOffset = 100_000;
        var downloader = Downloader();
        var request = Request("/same.gguf", "same.gguf");

        var firstDownload = downloader.DownloadAsync(request, null, Timeout);
        await served.Paused.WaitAsync(Timeout);
        var secondDownload = downloader.DownloadAsync(request, null, Timeout);
        while (ModelDownloader.LockHoldersFor(FinalPath("same.gguf")) != 2)
        {
            await Task.Delay(10, Timeout);
        }

        Assert.Equal([new RecordedRequest("/same.gguf", null)], _server.Requests);
        Assert.False(secondDownload.IsCompleted);
        served.ReleasePause();
        var first = await firstDownload;
        var second = await secondDownload;

        var expected = new DownloadResult(FinalPath("same.gguf"), Size, TestBytes.Sha256(content));
        Assert.Equal(expected, first);
        Assert.Equal(expected, second);
        Assert.Equal([new RecordedRequest("/same.gguf", null), new RecordedRequest("/same.gguf", null)], _server.Requests);
        Assert.Equal(content, await File.ReadAllBytesAsync(FinalPath("same.gguf")));
        Assert.Equal([FinalPath("same.gguf")], _dest.AllFiles());
        Assert.Equal(0, ModelDownloader.LockHoldersFor(FinalPath("same.gguf")));
    }

    [Fact]
    public async Task Download_CancelledWhileWaitingForSameFile_GivesUpItsPlaceOnly()
    {
        var content = TestBytes.Gguf(Size, seed: 30);
        var served = _server.Serve("/queued.gguf", content);
        served.PauseAtOffset = 100_000;
        var downloader = Downloader();
        var request = Request("/queued.gguf", "queued.gguf");
        using var waiterCancellation = CancellationTokenSource.CreateLinkedTokenSource(Timeout);

        var firstDownload = downloader.DownloadAsync(request, null, Timeout);
        await served.Paused.WaitAsync(Timeout);
        var waiting = downloader.DownloadAsync(request, null, waiterCancellation.Token);
        while (ModelDownloader.LockHoldersFor(FinalPath("queued.gguf")) != 2)
        {
            await Task.Delay(10, Timeout);
        }

        await waiterCancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        Assert.Equal(1, ModelDownloader.LockHoldersFor(FinalPath("queued.gguf")));
        served.ReleasePause();
        Assert.Equal(new DownloadResult(FinalPath("queued.gguf"), Size, TestBytes.Sha256(content)), await firstDownload);
        Assert.Equal([new RecordedRequest("/queued.gguf", null)], _server.Requests);
        Assert.Equal(0, ModelDownloader.LockHoldersFor(FinalPath("queued.gguf")));
    }

    [Fact]
    public async Task Download_CancelledMidway_KeepsPartialAndNextCallResumesFromIt()
    {
        var content = TestBytes.Gguf(Size, seed: 20);
        var served = _server.Serve("/cancel.gguf", content);
        served.PauseAtOffset = 100_000;
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(Timeout);
        var progress = new RecordingProgress(p =>
        {
            if (p.Bytes == 100_000)
            {
                cancellation.Cancel();
            }
        });
        var request = Request("/cancel.gguf", "cancel.gguf");

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Downloader().DownloadAsync(request, progress, cancellation.Token));

        Assert.Equal(100_000, new FileInfo(PartialPath("cancel.gguf")).Length);
        Assert.Equal([PartialPath("cancel.gguf")], _dest.AllFiles());
        served.ReleasePause();

        var resumed = new RecordingProgress();
        var result = await Downloader().DownloadAsync(
            request with { ExpectedSha256 = TestBytes.Sha256(content), ExpectedSize = Size }, resumed, Timeout);

        Assert.Equal([new RecordedRequest("/cancel.gguf", null), new RecordedRequest("/cancel.gguf", "bytes=100000-")], _server.Requests);
        Assert.Equal(new DownloadResult(FinalPath("cancel.gguf"), Size, TestBytes.Sha256(content)), result);
        Assert.Equal(content, await File.ReadAllBytesAsync(result.FilePath));
        Assert.Equal(
            [
                new DownloadProgress(0, 100_000, 0, DownloadStatus.Verifying),
                new DownloadProgress(100_000, 100_000, 0, DownloadStatus.Verifying),
                new DownloadProgress(100_000, Size, 0, DownloadStatus.Downloading),
            ],
            resumed.Reports.Take(3));
    }

    [Fact]
    public async Task Download_PartialHeldByAnotherProcess_FailsWithoutTouchingIt()
    {
        _server.Serve("/busy.gguf", TestBytes.Gguf(Size, seed: 21));
        Directory.CreateDirectory(Path.GetDirectoryName(PartialPath("busy.gguf"))!);
        await using var holder = new FileStream(PartialPath("busy.gguf"), FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        await holder.WriteAsync("GGUF"u8.ToArray(), Timeout);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/busy.gguf", "busy.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.TargetBusy, error.Error);
        Assert.StartsWith($"'busy.gguf' is already being downloaded into '{_dest.Path}' by another process (", error.Message);
        Assert.Empty(_server.Requests);
        Assert.Equal(4, holder.Length);
    }

    [Fact]
    public async Task Download_ServiceUnavailable_RetriesWithDoublingDelayThenFailsKeepingPartial()
    {
        var content = TestBytes.Gguf(Size, seed: 22);
        _server.Serve("/busy-server.gguf", content).Status = 503;
        WritePartial("busy-server.gguf", content[..5_000]);
        var time = new RecordingTimeProvider();
        var options = TestOptions();
        options.MaxRetries = 2;
        options.RetryBaseDelay = TimeSpan.FromMilliseconds(10);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => new ModelDownloader(_http, time, options)
            .DownloadAsync(Request("/busy-server.gguf", "busy-server.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.HttpError, error.Error);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, error.StatusCode);
        Assert.Equal($"Download of {Url("/busy-server.gguf")} failed after 3 attempts: HTTP 503 (ServiceUnavailable).", error.Message);
        Assert.Equal(Enumerable.Repeat(new RecordedRequest("/busy-server.gguf", "bytes=5000-"), 3), _server.Requests);
        Assert.Equal([TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20)], time.DueTimes);
        Assert.Equal(content[..5_000], await File.ReadAllBytesAsync(PartialPath("busy-server.gguf")));
    }

    [Fact]
    public async Task Download_ConnectionDropsBeforeAnyByteEveryTime_GivesUpKeepingPartial()
    {
        var content = TestBytes.Gguf(Size, seed: 23);
        var served = _server.Serve("/flaky.gguf", content);
        served.DropAtOffset = 5_000;
        served.DropRequests = int.MaxValue;
        WritePartial("flaky.gguf", content[..5_000]);
        var options = TestOptions();
        options.MaxRetries = 2;

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader(options).DownloadAsync(Request("/flaky.gguf", "flaky.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.NetworkFailure, error.Error);
        Assert.Null(error.StatusCode);
        Assert.StartsWith($"Download of {Url("/flaky.gguf")} failed after 3 attempts: connection lost: ", error.Message);
        Assert.Equal(Enumerable.Repeat(new RecordedRequest("/flaky.gguf", "bytes=5000-"), 3), _server.Requests);
        Assert.Equal(content[..5_000], await File.ReadAllBytesAsync(PartialPath("flaky.gguf")));
    }

    [Fact]
    public async Task Download_NotFound_FailsAtOnceWithoutRetry()
    {
        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/missing.gguf", "missing.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.HttpError, error.Error);
        Assert.Equal(HttpStatusCode.NotFound, error.StatusCode);
        Assert.Equal($"Download of {Url("/missing.gguf")} failed: HTTP 404 (NotFound).", error.Message);
        Assert.Equal([new RecordedRequest("/missing.gguf", null)], _server.Requests);
    }

    [Fact]
    public async Task Download_DifferentFileAlreadyInPlace_IsNotOverwritten()
    {
        var content = TestBytes.Gguf(Size, seed: 24);
        var existing = TestBytes.Gguf(Size, seed: 25);
        _server.Serve("/taken.gguf", content);
        await File.WriteAllBytesAsync(FinalPath("taken.gguf"), existing);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(
            () => Downloader().DownloadAsync(Request("/taken.gguf", "taken.gguf"), null, Timeout));

        Assert.Equal(ModelDownloadError.DestinationConflict, error.Error);
        Assert.Equal(
            $"'taken.gguf' already exists in '{_dest.Path}' with different content (SHA-256 {TestBytes.Sha256(existing)}); "
            + "delete it or choose another name.",
            error.Message);
        Assert.Equal(existing, await File.ReadAllBytesAsync(FinalPath("taken.gguf")));
        Assert.Equal([FinalPath("taken.gguf")], _dest.AllFiles());
    }

    [Fact]
    public async Task Download_DifferentFileInPlaceAndChecksumGiven_FailsWithoutDownloading()
    {
        var existing = TestBytes.Gguf(1_000, seed: 26);
        _server.Serve("/taken2.gguf", TestBytes.Gguf(Size, seed: 27));
        await File.WriteAllBytesAsync(FinalPath("taken2.gguf"), existing);

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => Downloader().DownloadAsync(
            Request("/taken2.gguf", "taken2.gguf") with { ExpectedSha256 = new string('a', 64) }, null, Timeout));

        Assert.Equal(ModelDownloadError.DestinationConflict, error.Error);
        Assert.Equal(
            $"'taken2.gguf' already exists in '{_dest.Path}' with different content (SHA-256 {TestBytes.Sha256(existing)}); "
            + "delete it or choose another name.",
            error.Message);
        Assert.Empty(_server.Requests);
    }

    [Fact]
    public async Task Download_SameFileAlreadyInPlaceAndChecksumGiven_ReturnsItWithoutRequest()
    {
        var content = TestBytes.Gguf(Size, seed: 28);
        _server.Serve("/present.gguf", content);
        await File.WriteAllBytesAsync(FinalPath("present.gguf"), content);

        var result = await Downloader().DownloadAsync(
            Request("/present.gguf", "present.gguf") with { ExpectedSha256 = TestBytes.Sha256(content), ExpectedSize = Size },
            null,
            Timeout);

        Assert.Equal(new DownloadResult(FinalPath("present.gguf"), Size, TestBytes.Sha256(content)), result);
        Assert.Empty(_server.Requests);
    }

    [Theory]
    [InlineData("../escape.gguf", null, "File name must not contain path separators. (Parameter 'request')")]
    [InlineData("model.bin", null, "File name must end in .gguf. (Parameter 'request')")]
    [InlineData("ok.gguf", "abc", "Expected SHA-256 must be 64 hexadecimal characters. (Parameter 'request')")]
    public async Task Download_InvalidRequest_IsRejectedBeforeAnythingHappens(string fileName, string? sha256, string message)
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Downloader().DownloadAsync(
            Request("/x.gguf", fileName) with { ExpectedSha256 = sha256 }, null, Timeout));

        Assert.Equal(message, error.Message);
        Assert.Empty(_server.Requests);
        Assert.Empty(Directory.GetFileSystemEntries(_dest.Path));
    }

    [Fact]
    public async Task Download_FileUrl_IsRejected()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Downloader().DownloadAsync(
            new DownloadRequest(new Uri("file:///etc/passwd"), _dest.Path, "p.gguf"), null, Timeout));

        Assert.Equal("Download URL must be an absolute http:// or https:// URL. (Parameter 'request')", error.Message);
    }

    [Fact]
    public async Task Download_FromAspNetCoreRangeProcessing_ResumesPartialFile()
    {
        var content = TestBytes.Gguf(Size, seed: 29);
        var ranges = new ConcurrentQueue<string>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        app.MapGet("/model.gguf", (HttpContext context) =>
        {
            ranges.Enqueue(context.Request.Headers.Range.ToString());
            return Results.File(content, "application/octet-stream", enableRangeProcessing: true);
        });
        await app.StartAsync(Timeout);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        WritePartial("kestrel.gguf", content[..70_000]);

        var result = await Downloader().DownloadAsync(
            new DownloadRequest(new Uri($"{address}/model.gguf"), _dest.Path, "kestrel.gguf"), null, Timeout);
        await app.StopAsync(Timeout);

        Assert.Equal(["bytes=70000-"], ranges);
        Assert.Equal(new DownloadResult(FinalPath("kestrel.gguf"), Size, TestBytes.Sha256(content)), result);
        Assert.Equal(content, await File.ReadAllBytesAsync(result.FilePath));
    }

    private static ModelDownloaderOptions TestOptions() => new()
    {
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        RetryMaxDelay = TimeSpan.FromMilliseconds(100),
        ReadTimeout = TimeSpan.FromSeconds(20),
        ProgressInterval = TimeSpan.Zero,
    };

    private ModelDownloader Downloader(ModelDownloaderOptions? options = null) =>
        new(_http, TimeProvider.System, options ?? TestOptions());

    private Uri Url(string path) => _server.UrlFor(path);

    private DownloadRequest Request(string path, string fileName) => new(Url(path), _dest.Path, fileName);

    private string FinalPath(string fileName) => Path.Combine(_dest.Path, fileName);

    private string PartialPath(string fileName) => ModelDownloader.GetPartialPath(_dest.Path, fileName);

    private void WritePartial(string fileName, byte[] bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(PartialPath(fileName))!);
        File.WriteAllBytes(PartialPath(fileName), bytes);
    }
}
