using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Sutazai.Data.Entities;

namespace Sutazai.Data;

/// <summary>The relational store. One model for every provider; migrations live in one assembly per provider.</summary>
public sealed class AppDbContext(DbContextOptions<AppDbContext> options) : IdentityUserContext<AppUser, Guid>(options)
{
    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();

    public DbSet<SystemFlag> SystemFlags => Set<SystemFlag>();

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();

    public DbSet<Conversation> Conversations => Set<Conversation>();

    public DbSet<ChatMessageEntity> Messages => Set<ChatMessageEntity>();

    public DbSet<KnowledgeCollection> Collections => Set<KnowledgeCollection>();

    public DbSet<CollectionShare> CollectionShares => Set<CollectionShare>();

    public DbSet<KnowledgeDocument> Documents => Set<KnowledgeDocument>();

    public DbSet<DocumentChunk> Chunks => Set<DocumentChunk>();

    public DbSet<QueuedTask> TaskQueue => Set<QueuedTask>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);

        builder.Entity<AppUser>(user =>
        {
            user.ToTable("users");
            user.Property(u => u.FullName).HasMaxLength(200);
            user.Property(u => u.Role).HasMaxLength(16).IsRequired();
            user.Property(u => u.DefaultSystemPrompt).HasMaxLength(8000);
            // Identity's default e-mail index is not unique; two concurrent registrations must not both win.
            user.HasIndex(u => u.NormalizedEmail).HasDatabaseName("EmailIndex").IsUnique();
        });
        builder.Entity<Microsoft.AspNetCore.Identity.IdentityUserClaim<Guid>>().ToTable("user_claims");
        builder.Entity<Microsoft.AspNetCore.Identity.IdentityUserLogin<Guid>>().ToTable("user_logins");
        builder.Entity<Microsoft.AspNetCore.Identity.IdentityUserToken<Guid>>().ToTable("user_tokens");

        builder.Entity<RefreshToken>(token =>
        {
            token.ToTable("refresh_tokens");
            token.HasKey(t => t.Id);
            token.Property(t => t.TokenHash).HasMaxLength(64).IsRequired();
            token.HasIndex(t => t.TokenHash).IsUnique();
            token.HasIndex(t => t.FamilyId);
            token.HasIndex(t => t.UserId);
            token.Property(t => t.RevokedReason).HasMaxLength(64);
            token.Property(t => t.CreatedByIp).HasMaxLength(64);
            token.Property(t => t.UserAgent).HasMaxLength(256);
            token.HasOne<AppUser>().WithMany().HasForeignKey(t => t.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<ApiKey>(key =>
        {
            key.ToTable("api_keys");
            key.HasKey(k => k.Id);
            key.Property(k => k.Name).HasMaxLength(100).IsRequired();
            key.Property(k => k.Prefix).HasMaxLength(32).IsRequired();
            key.Property(k => k.KeyHash).HasMaxLength(64).IsRequired();
            key.HasIndex(k => k.KeyHash).IsUnique();
            key.HasIndex(k => k.UserId);
            key.HasOne<AppUser>().WithMany().HasForeignKey(k => k.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<Conversation>(conversation =>
        {
            conversation.ToTable("conversations");
            conversation.HasKey(c => c.Id);
            conversation.Property(c => c.Title).HasMaxLength(200).IsRequired();
            conversation.Property(c => c.Model).HasMaxLength(200);
            conversation.Property(c => c.SystemPrompt).HasMaxLength(8000);
            conversation.HasIndex(c => new { c.UserId, c.UpdatedAt });
            conversation.HasOne<AppUser>().WithMany().HasForeignKey(c => c.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<ChatMessageEntity>(message =>
        {
            message.ToTable("messages");
            message.HasKey(m => m.Id);
            message.Property(m => m.Role).HasMaxLength(16).IsRequired();
            message.Property(m => m.Status).HasMaxLength(16).IsRequired();
            message.Property(m => m.Model).HasMaxLength(200);
            message.Property(m => m.Provider).HasMaxLength(32);
            message.Property(m => m.FinishReason).HasMaxLength(32);
            message.Property(m => m.Error).HasMaxLength(2000);
            message.HasIndex(m => new { m.ConversationId, m.CreatedAt });
            message.HasIndex(m => m.ParentId);
            message.HasOne<Conversation>().WithMany().HasForeignKey(m => m.ConversationId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<KnowledgeCollection>(collection =>
        {
            collection.ToTable("collections");
            collection.HasKey(c => c.Id);
            collection.Property(c => c.Name).HasMaxLength(100).IsRequired();
            collection.Property(c => c.Description).HasMaxLength(1000);
            collection.HasIndex(c => new { c.OwnerId, c.Name }).IsUnique();
            collection.HasOne<AppUser>().WithMany().HasForeignKey(c => c.OwnerId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<CollectionShare>(share =>
        {
            share.ToTable("collection_shares");
            share.HasKey(s => new { s.CollectionId, s.UserId });
            share.HasOne<KnowledgeCollection>().WithMany().HasForeignKey(s => s.CollectionId).OnDelete(DeleteBehavior.Cascade);
            share.HasOne<AppUser>().WithMany().HasForeignKey(s => s.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<KnowledgeDocument>(document =>
        {
            document.ToTable("documents");
            document.HasKey(d => d.Id);
            document.Property(d => d.Name).HasMaxLength(255).IsRequired();
            document.Property(d => d.Title).HasMaxLength(500);
            document.Property(d => d.Kind).HasMaxLength(32).IsRequired();
            document.Property(d => d.Sha256).HasMaxLength(64).IsRequired();
            document.Property(d => d.SourceUrl).HasMaxLength(2048);
            document.Property(d => d.Status).HasMaxLength(16).IsRequired();
            document.Property(d => d.Error).HasMaxLength(2000);
            document.Property(d => d.EmbeddingModel).HasMaxLength(200);
            document.HasIndex(d => new { d.OwnerId, d.Sha256 });
            document.HasIndex(d => d.Status);
            document.HasIndex(d => d.CollectionId);
            document.HasOne<AppUser>().WithMany().HasForeignKey(d => d.OwnerId).OnDelete(DeleteBehavior.Cascade);
            document.HasOne<KnowledgeCollection>().WithMany().HasForeignKey(d => d.CollectionId).OnDelete(DeleteBehavior.SetNull);
        });

        builder.Entity<DocumentChunk>(chunk =>
        {
            chunk.ToTable("document_chunks");
            chunk.HasKey(c => c.Id);
            chunk.Property(c => c.Heading).HasMaxLength(1000);
            chunk.HasIndex(c => new { c.DocumentId, c.Index }).IsUnique();
            chunk.HasIndex(c => c.OwnerId);
            chunk.HasOne<KnowledgeDocument>().WithMany().HasForeignKey(c => c.DocumentId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<QueuedTask>(task =>
        {
            task.ToTable("task_queue");
            task.HasKey(t => t.Id);
            task.Property(t => t.Queue).HasMaxLength(64).IsRequired();
            task.Property(t => t.Kind).HasMaxLength(200).IsRequired();
            task.Property(t => t.Payload).IsRequired();
            task.Property(t => t.Status).HasMaxLength(16).IsRequired();
            task.Property(t => t.LeaseOwner).HasMaxLength(100);
            task.Property(t => t.LastError).HasMaxLength(4000);
            // The claim query: claimable rows of a status, oldest availability first.
            task.HasIndex(t => new { t.Status, t.AvailableAt });
            task.HasIndex(t => new { t.Status, t.UpdatedAt });
        });

        builder.Entity<SystemFlag>(flag =>
        {
            flag.ToTable("system_flags");
            flag.HasKey(f => f.Key);
            flag.Property(f => f.Key).HasMaxLength(64);
            flag.Property(f => f.Value).HasMaxLength(256);
        });
    }

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // Every timestamp is UTC. SQLite hands back DateTimeKind.Unspecified, so mark it on the way out.
        configurationBuilder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        configurationBuilder.Properties<DateTime?>().HaveConversion<UtcDateTimeConverter>();
    }

    private sealed class UtcDateTimeConverter() : ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));
}
