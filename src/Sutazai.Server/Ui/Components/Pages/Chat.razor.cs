using System.Text;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.JSInterop;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Server.Conversations;
using Sutazai.Server.Knowledge;

namespace Sutazai.Server.Ui.Components.Pages;

/// <summary>
/// The chat page. It works in-process on the same services the REST API and /ws/chat use: ReplyPipeline starts a
/// reply (detached from this circuit, so a dropped connection loses nothing) and the page watches it on ReplyHub —
/// events so far, then live tokens. Opening a conversation with a running reply (a reload, another tab) follows it.
/// </summary>
public sealed partial class Chat
{
    [Parameter] public Guid? Id { get; set; }

    private sealed class Streaming(Guid assistantId)
    {
        public Guid AssistantId { get; } = assistantId;
        public StringBuilder Text { get; } = new();

        public string Snapshot()
        {
            lock (Text) return Text.ToString();
        }
    }

    private List<ConversationResponse> _conversations = [];
    private List<SearchHit>? _searchHits;
    private string _search = "";
    private Conversation? _conversation;
    private List<MessageResponse> _messages = [];
    private List<ModelInfo> _models = [];
    private string? _selectedModel;
    private string? _systemPrompt;
    private bool _showSystemPrompt;
    private bool _notFound;
    private bool _loaded;
    private bool _listOpen;
    private string _draft = "";
    private bool _sending;
    private string? _error;
    private Guid? _retryMessageId;
    private Streaming? _streaming;
    private CancellationTokenSource? _watch;
    private Guid? _renaming;
    private string _renameText = "";
    private Guid? _confirmDelete;
    private Guid? _editing;
    private string _editText = "";
    private (Guid Message, int Index)? _openCitation;
    private Guid? _userId;
    private bool _draftRestored;
    private readonly CancellationTokenSource _disposed = new();

    // The composer's text lives in the browser (typing never waits for the server, and a reconnect cannot reset it);
    // _draft follows it through oninput, and the page sets it only to restore a draft or clear a sent message.
    private string DraftKey => Id?.ToString() ?? "new";

    protected override async Task OnInitializedAsync()
    {
        _userId = await Session.UserIdAsync();
        if (_userId is null) return;
        await ReloadModelsAsync();
        await LoadListAsync();
    }

    protected override async Task OnParametersSetAsync()
    {
        if (_userId is null) return;
        if (Id is { } id && id == _conversation?.Id) return; // our own navigation after creating it
        StopWatching();
        _error = null;
        _retryMessageId = null;
        _editing = null;
        _openCitation = null;
        _notFound = false;
        _draftRestored = false;
        if (Id is { } conversationId)
        {
            await using var scope = Scopes.CreateAsyncScope();
            var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
            _conversation = await service.FindAsync(_userId.Value, conversationId, _disposed.Token);
            if (_conversation is null)
            {
                _notFound = true;
                _messages = [];
            }
            else
            {
                _systemPrompt = _conversation.SystemPrompt;
                if (_conversation.Model is { } model && _models.Any(m => m.Id == model)) _selectedModel = model;
                await LoadMessagesAsync();
                if (Hub.Get(conversationId, _userId.Value) is { } running) Watch(running);
            }
        }
        else
        {
            _conversation = null;
            _messages = [];
            _systemPrompt = null;
            _streaming = null;
        }
        _loaded = true;
    }

    protected override async Task OnAfterRenderAsync(bool firstRender)
    {
        if (!_draftRestored && _loaded && !_notFound)
        {
            _draftRestored = true;
            var saved = await JS.InvokeAsync<string>("sutazai.loadDraft", DraftKey);
            _draft = saved;
            await JS.InvokeVoidAsync("sutazai.setValue", "composer", saved);
        }
        if (_messages.Count > 0 || _streaming is not null) await JS.InvokeVoidAsync("sutazai.scrollToBottom", "messages");
    }

    private async Task ReloadModelsAsync()
    {
        await using var scope = Scopes.CreateAsyncScope();
        var catalog = scope.ServiceProvider.GetRequiredService<ModelCatalog>();
        var listing = await catalog.ListAsync(_disposed.Token);
        _models = [.. listing.Models];
        _selectedModel ??= await catalog.DefaultModelIdAsync(_disposed.Token) ?? _models.FirstOrDefault()?.Id;
        if (_selectedModel is not null && _models.All(m => m.Id != _selectedModel)) _selectedModel = _models.FirstOrDefault()?.Id;
    }

    private async Task LoadListAsync()
    {
        await using var scope = Scopes.CreateAsyncScope();
        var (items, _) = await scope.ServiceProvider.GetRequiredService<ConversationStore>().ListAsync(_userId!.Value, archived: false, 1, 200, _disposed.Token);
        _conversations = items.Select(c => ConversationResponse.From(c, Hub.IsRunning(c.Id))).ToList();
    }

    private async Task LoadMessagesAsync()
    {
        if (_conversation is null) return;
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        var fresh = await service.FindAsync(_userId!.Value, _conversation.Id, _disposed.Token);
        if (fresh is null)
        {
            _notFound = true;
            _conversation = null;
            _messages = [];
            return;
        }
        _conversation = fresh;
        var all = await service.AllMessagesAsync(fresh.Id, _disposed.Token);
        _messages = service.ActiveBranch(all, fresh.ActiveLeafId);
    }

    private async Task OnSearchAsync(ChangeEventArgs e)
    {
        _search = e.Value?.ToString() ?? "";
        if (string.IsNullOrWhiteSpace(_search) || _search.Length > 200)
        {
            _searchHits = null;
            return;
        }
        if (await Session.UserIdAsync() is not { } userId) return;
        await using var scope = Scopes.CreateAsyncScope();
        _searchHits = await scope.ServiceProvider.GetRequiredService<ConversationStore>().SearchAsync(userId, _search, _disposed.Token);
    }

    private void CloseList()
    {
        _listOpen = false;
        _search = "";
        _searchHits = null;
    }

    private void NewChat()
    {
        _listOpen = false;
        Navigation.NavigateTo("/");
    }

    private async Task OnModelChangedAsync(ChangeEventArgs e)
    {
        _selectedModel = e.Value?.ToString();
        if (_conversation is null || await Session.UserIdAsync() is not { } userId) return;
        await UpdateConversationAsync(userId, _conversation.Id, new UpdateConversationRequest(null, null, null, null, _selectedModel ?? ""));
    }

    private async Task SaveSystemPromptAsync()
    {
        if (await Session.UserIdAsync() is not { } userId) return;
        var errors = ConversationStore.ValidateFields(null, _systemPrompt);
        if (errors.Count > 0)
        {
            _error = string.Join(" ", errors.SelectMany(e => e.Value));
            return;
        }
        if (_conversation is null)
        {
            await CreateConversationAsync(userId);
        }
        else
        {
            await UpdateConversationAsync(userId, _conversation.Id, new UpdateConversationRequest(null, null, null, _systemPrompt ?? "", null));
        }
        _showSystemPrompt = false;
    }

    private async Task UpdateConversationAsync(Guid userId, Guid conversationId, UpdateConversationRequest request)
    {
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        var conversation = await service.FindAsync(userId, conversationId, _disposed.Token);
        if (conversation is null)
        {
            _error = "That conversation no longer exists.";
            await LoadListAsync();
            return;
        }
        await service.UpdateAsync(conversation, request, _disposed.Token);
        if (_conversation?.Id == conversationId) _conversation = conversation;
        await LoadListAsync();
    }

    private async Task CreateConversationAsync(Guid userId)
    {
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        _conversation = await service.CreateAsync(userId, new CreateConversationRequest(null, _selectedModel, string.IsNullOrWhiteSpace(_systemPrompt) ? null : _systemPrompt), _disposed.Token);
        await JS.InvokeVoidAsync("sutazai.clearDraft", "new");
        Navigation.NavigateTo($"/c/{_conversation.Id}");
    }

    private async Task SendAsync()
    {
        var text = _draft;
        if (string.IsNullOrWhiteSpace(text) || _sending || _streaming is not null) return;
        if (await Session.UserIdAsync() is not { } userId) return;
        _sending = true;
        _error = null;
        _retryMessageId = null;
        try
        {
            if (_conversation is null) await CreateConversationAsync(userId);
            await using var scope = Scopes.CreateAsyncScope();
            var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
            var conversation = await service.FindAsync(userId, _conversation!.Id, _disposed.Token);
            if (conversation is null)
            {
                _notFound = true;
                return;
            }
            var (knowledge, knowledgeError) = await KnowledgeForAsync(scope.ServiceProvider, userId, text);
            if (knowledgeError is not null)
            {
                _error = knowledgeError;
                return;
            }
            var result = await scope.ServiceProvider.GetRequiredService<ReplyPipeline>().StartReplyAsync(userId, conversation, text, null, null, _selectedModel, null, _disposed.Token, edit: false, knowledge);
            _draft = "";
            await JS.InvokeVoidAsync("sutazai.setValue", "composer", "");
            await JS.InvokeVoidAsync("sutazai.clearDraft", conversation.Id.ToString());
            await JS.InvokeVoidAsync("sutazai.clearDraft", "new");
            await HandleStartAsync(result);
        }
        finally
        {
            _sending = false;
        }
    }

    /// <summary>"#name" words in a message attach my collections of that name, else those shared with me (<see cref="CollectionService.NamedInAsync"/>).</summary>
    private static async Task<(KnowledgeRequest? Request, string? Error)> KnowledgeForAsync(IServiceProvider services, Guid userId, string text)
    {
        var ids = await services.GetRequiredService<CollectionService>().NamedInAsync(userId, text, CancellationToken.None);
        if (ids.Count == 0) return (null, null); // a hashtag that names no collection is just text
        return await services.GetRequiredService<ReplyGrounding>().KnowledgeForAsync(userId, ids, useKnowledge: false, CancellationToken.None);
    }

    private async Task HandleStartAsync(StartReplyResult result)
    {
        await LoadMessagesAsync();
        await LoadListAsync();
        switch (result)
        {
            case StartReplyResult.Started started:
                Watch(started.Reply);
                break;
            case StartReplyResult.Rejected rejected:
                // The user message is stored and the failure recorded on the reply; say why in place, with a retry.
                var failed = _messages.LastOrDefault(m => m.Role == "assistant" && m.Status == MessageStatus.Error);
                if (failed is null)
                {
                    _error = rejected.Detail;
                    _retryMessageId = _messages.LastOrDefault(m => m.Role == "user")?.Id;
                }
                break;
        }
    }

    private void Watch(RunningReply reply)
    {
        StopWatching();
        var streaming = new Streaming(reply.AssistantMessageId);
        _streaming = streaming;
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
        _watch = cts;
        _ = Task.Run(async () =>
        {
            var lastRender = DateTime.UtcNow;
            try
            {
                await foreach (var e in reply.WatchAsync(cts.Token))
                {
                    if (e is ReplyEvent.Token token)
                    {
                        lock (streaming.Text) streaming.Text.Append(token.Content);
                        if ((DateTime.UtcNow - lastRender).TotalMilliseconds >= 40)
                        {
                            lastRender = DateTime.UtcNow;
                            await InvokeAsync(StateHasChanged);
                        }
                    }
                    else if (e is ReplyEvent.Failed failed)
                    {
                        await InvokeAsync(() => _error = failed.Message is null ? failed.Detail : null);
                    }
                }
                // Ended or failed: the hub lets the conversation take a new reply once the stored message is final.
                await reply.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10), cts.Token);
                await InvokeAsync(async () =>
                {
                    if (_streaming == streaming) _streaming = null;
                    await LoadMessagesAsync();
                    await LoadListAsync();
                    StateHasChanged();
                });
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                // Left the conversation or closed the page; the reply goes on and is stored.
            }
            catch (ObjectDisposedException) when (_disposed.IsCancellationRequested)
            {
                // The circuit is gone.
            }
        });
    }

    private void StopWatching()
    {
        _watch?.Cancel();
        _watch?.Dispose();
        _watch = null;
        _streaming = null;
    }

    private async Task StopAsync()
    {
        if (_conversation is null || await Session.UserIdAsync() is not { } userId) return;
        if (Hub.Get(_conversation.Id, userId) is { } running) await running.Stop.CancelAsync();
    }

    private void StartEdit(MessageResponse message)
    {
        _editing = message.Id;
        _editText = message.Content;
    }

    private async Task SubmitEditAsync(Guid messageId)
    {
        if (string.IsNullOrWhiteSpace(_editText) || _conversation is null) return;
        if (await Session.UserIdAsync() is not { } userId) return;
        _editing = null;
        _error = null;
        await StartFromMessageAsync(userId, _conversation.Id, _editText, messageId, edit: true);
    }

    /// <summary>Edit (a new user message beside <paramref name="messageId"/>) or regenerate (a new answer to it).</summary>
    private async Task StartFromMessageAsync(Guid userId, Guid conversationId, string? text, Guid messageId, bool edit)
    {
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        var conversation = await service.FindAsync(userId, conversationId, _disposed.Token);
        if (conversation is null)
        {
            _notFound = true;
            return;
        }
        var result = await scope.ServiceProvider.GetRequiredService<ReplyPipeline>().StartReplyAsync(userId, conversation, text, null, messageId, _selectedModel, null, _disposed.Token, edit);
        await HandleStartAsync(result);
    }

    private async Task RegenerateAsync(Guid messageId)
    {
        if (_conversation is null || await Session.UserIdAsync() is not { } userId) return;
        _error = null;
        _retryMessageId = null;
        await StartFromMessageAsync(userId, _conversation.Id, null, messageId, edit: false);
    }

    private async Task SwitchBranchAsync(Guid messageId)
    {
        if (_conversation is null || await Session.UserIdAsync() is not { } userId) return;
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        var conversation = await service.FindAsync(userId, _conversation.Id, _disposed.Token);
        if (conversation is null)
        {
            _notFound = true;
            return;
        }
        if (await service.SwitchBranchAsync(conversation, messageId, _disposed.Token) is { } branch)
        {
            _conversation = conversation;
            _messages = branch;
        }
    }

    private async Task CopyAsync(string text) => await JS.InvokeVoidAsync("sutazai.copyText", text);

    private async Task ExportAsync(string format)
    {
        if (_conversation is null || await Session.UserIdAsync() is not { } userId) return;
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        var conversation = await service.FindAsync(userId, _conversation.Id, _disposed.Token);
        if (conversation is null) return;
        var json = scope.ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var file = await service.ExportAsync(conversation, format, json, _disposed.Token);
        if (file is null) return;
        await JS.InvokeVoidAsync("sutazai.download", file.FileName, file.ContentType, Encoding.UTF8.GetString(file.Content));
    }

    private void ToggleCitation(Guid messageId, int index) =>
        _openCitation = _openCitation == (messageId, index) ? null : (messageId, index);

    private void StartRename(Guid id, string title)
    {
        _renaming = id;
        _renameText = title;
    }

    private async Task RenameKeyAsync(KeyboardEventArgs e, Guid id)
    {
        if (e.Key == "Enter") await SaveRenameAsync(id);
        else if (e.Key == "Escape") _renaming = null;
    }

    private async Task SaveRenameAsync(Guid id)
    {
        if (await Session.UserIdAsync() is not { } userId) return;
        var errors = ConversationStore.ValidateFields(_renameText, null);
        if (errors.Count > 0)
        {
            _error = string.Join(" ", errors.SelectMany(e => e.Value));
            return;
        }
        await UpdateConversationAsync(userId, id, new UpdateConversationRequest(_renameText, null, null, null, null));
        _renaming = null;
    }

    private async Task TogglePinAsync(Guid id)
    {
        if (await Session.UserIdAsync() is not { } userId) return;
        var current = _conversations.FirstOrDefault(c => c.Id == id);
        if (current is null) return;
        await UpdateConversationAsync(userId, id, new UpdateConversationRequest(null, !current.Pinned, null, null, null));
    }

    private async Task DeleteAsync(Guid id)
    {
        if (await Session.UserIdAsync() is not { } userId) return;
        _confirmDelete = null;
        await using var scope = Scopes.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        if (await service.FindAsync(userId, id, _disposed.Token) is { } conversation) await service.DeleteAsync(conversation, _disposed.Token);
        await LoadListAsync();
        if (_conversation?.Id == id)
        {
            StopWatching();
            _conversation = null;
            _messages = [];
            Navigation.NavigateTo("/");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _disposed.CancelAsync();
        _watch?.Dispose();
        _disposed.Dispose();
    }
}
