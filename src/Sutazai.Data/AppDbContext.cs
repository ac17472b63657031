using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Sutazai.Data.Entities;

namespace Sutazai.Data;

/// <summary>The relational store. One model for every provider; migrations live in one assembly per provider.</summary>
public sealed class AppDbContext(DbContextOptions<AppDbContext> options) : IdentityUserContext<AppUser, Guid>(options), IDataProtectionKeyContext
{
    /// <summary>ASP.NET Core's data-protection key ring (cookies, antiforgery, reset tokens), shared by every node.</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();

    public DbSet<SystemFlag> SystemFlags => Set<SystemFlag>();

    public DbSet<ClusterNode> ClusterNodes => Set<ClusterNode>();

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();

    public DbSet<Conversation> Conversations => Set<Conversation>();

    public DbSet<ChatMessageEntity> Messages => Set<ChatMessageEntity>();

    public DbSet<KnowledgeCollection> Collections => Set<KnowledgeCollection>();

    public DbSet<CollectionShare> CollectionShares => Set<CollectionShare>();

    public DbSet<KnowledgeDocument> Documents => Set<KnowledgeDocument>();

    public DbSet<DocumentChunk> Chunks => Set<DocumentChunk>();

    public DbSet<CustomAgent> CustomAgents => Set<CustomAgent>();

    public DbSet<AgentRun> AgentRuns => Set<AgentRun>();

    public DbSet<AgentRunStep> AgentRunSteps => Set<AgentRunStep>();

    public DbSet<AgentApproval> AgentApprovals => Set<AgentApproval>();

    public DbSet<ToolPolicy> ToolPolicies => Set<ToolPolicy>();

    public DbSet<McpServerRegistration> McpServers => Set<McpServerRegistration>();

    public DbSet<McpServerUser> McpServerUsers => Set<McpServerUser>();

    public DbSet<MemoryBlock> MemoryBlocks => Set<MemoryBlock>();

    public DbSet<MemoryPassage> MemoryPassages => Set<MemoryPassage>();

    public DbSet<GraphEntity> GraphEntities => Set<GraphEntity>();

    public DbSet<GraphMention> GraphMentions => Set<GraphMention>();

    public DbSet<GraphEdge> GraphEdges => Set<GraphEdge>();
    public DbSet<QueuedTask> TaskQueue => Set<QueuedTask>();

    public DbSet<VectorCollection> VectorCollections => Set<VectorCollection>();

    public DbSet<VectorPoint> VectorPoints => Set<VectorPoint>();

    public DbSet<VectorPointTag> VectorPointTags => Set<VectorPointTag>();

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
        builder.Entity<DataProtectionKey>().ToTable("data_protection_keys");
        builder.Entity<ContentBlob>(blob =>
        {
            blob.ToTable("content_blobs");
            blob.HasKey(b => b.Key);
            blob.Property(b => b.Key).HasMaxLength(300);
        });
        builder.Entity<ContentBlobPart>(part =>
        {
            part.ToTable("content_blob_parts");
            part.HasKey(p => new { p.Key, p.Index });
            part.Property(p => p.Key).HasMaxLength(300);
        });
        builder.Entity<ClusterNode>(node =>
        {
            node.ToTable("cluster_nodes");
            node.HasKey(n => n.Id);
            node.Property(n => n.Id).HasMaxLength(64);
            node.Property(n => n.Role).HasMaxLength(16);
            node.Property(n => n.Version).HasMaxLength(100);
            node.Property(n => n.Address).HasMaxLength(500);
            node.Property(n => n.Host).HasMaxLength(255);
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
            key.Property(k => k.Scopes).HasMaxLength(200).IsRequired();
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
            message.Property(m => m.GeneratingNode).HasMaxLength(64);
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

        builder.Entity<CustomAgent>(agent =>
        {
            agent.ToTable("custom_agents");
            agent.HasKey(a => a.Id);
            agent.Property(a => a.Name).HasMaxLength(100).IsRequired();
            agent.Property(a => a.Description).HasMaxLength(1000);
            agent.Property(a => a.Instructions).HasMaxLength(16000).IsRequired();
            agent.Property(a => a.Model).HasMaxLength(200);
            agent.Property(a => a.Tools).HasMaxLength(500);
            agent.HasIndex(a => new { a.OwnerId, a.Name }).IsUnique();
            agent.HasOne<AppUser>().WithMany().HasForeignKey(a => a.OwnerId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<AgentRun>(run =>
        {
            run.ToTable("agent_runs");
            run.HasKey(r => r.Id);
            run.Property(r => r.AgentId).HasMaxLength(64).IsRequired();
            run.Property(r => r.AgentName).HasMaxLength(100).IsRequired();
            run.Property(r => r.Model).HasMaxLength(200);
            run.Property(r => r.Status).HasMaxLength(24).IsRequired();
            run.Property(r => r.Error).HasMaxLength(4000);
            run.Property(r => r.CollectionIds).HasMaxLength(2000);
            run.Property(r => r.LeaseOwner).HasMaxLength(128);
            run.HasIndex(r => new { r.UserId, r.CreatedAt });
            run.HasIndex(r => r.Status);
            run.HasOne<AppUser>().WithMany().HasForeignKey(r => r.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<AgentRunStep>(step =>
        {
            step.ToTable("agent_run_steps");
            step.HasKey(s => s.Id);
            step.Property(s => s.Kind).HasMaxLength(24).IsRequired();
            step.Property(s => s.Member).HasMaxLength(100);
            step.HasIndex(s => new { s.RunId, s.Index }).IsUnique();
            step.HasOne<AgentRun>().WithMany().HasForeignKey(s => s.RunId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<AgentApproval>(approval =>
        {
            approval.ToTable("agent_approvals");
            approval.HasKey(a => a.Id);
            approval.Property(a => a.CallId).HasMaxLength(128).IsRequired();
            approval.Property(a => a.Tool).HasMaxLength(100).IsRequired();
            approval.Property(a => a.Risk).HasMaxLength(8).IsRequired();
            approval.Property(a => a.EditedRisk).HasMaxLength(8);
            approval.Property(a => a.Status).HasMaxLength(16).IsRequired();
            approval.HasIndex(a => new { a.RunId, a.CallId, a.Round }).IsUnique();
            approval.HasIndex(a => new { a.UserId, a.Status });
            approval.HasOne<AgentRun>().WithMany().HasForeignKey(a => a.RunId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<ToolPolicy>(policy =>
        {
            policy.ToTable("tool_policies");
            policy.HasKey(p => p.Tool);
            policy.Property(p => p.Tool).HasMaxLength(100);
        });

        builder.Entity<McpServerRegistration>(server =>
        {
            server.ToTable("mcp_servers");
            server.HasKey(s => s.Id);
            server.Property(s => s.Name).HasMaxLength(40).IsRequired();
            server.Property(s => s.Url).HasMaxLength(2000).IsRequired();
            server.Property(s => s.Headers).HasMaxLength(16000);
            server.HasIndex(s => s.Name).IsUnique();
            server.HasMany(s => s.AllowedUsers).WithOne().HasForeignKey(u => u.ServerId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<McpServerUser>(user =>
        {
            user.ToTable("mcp_server_users");
            user.HasKey(u => new { u.ServerId, u.UserId });
            user.HasIndex(u => u.UserId);
            user.HasOne<AppUser>().WithMany().HasForeignKey(u => u.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<MemoryBlock>(block =>
        {
            block.ToTable("memory_blocks");
            block.HasKey(b => new { b.UserId, b.Label });
            block.Property(b => b.Label).HasMaxLength(32);
            block.Property(b => b.Value).HasMaxLength(8000);
            block.HasOne<AppUser>().WithMany().HasForeignKey(b => b.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<MemoryPassage>(passage =>
        {
            passage.ToTable("memory_passages");
            passage.HasKey(p => p.Id);
            passage.Property(p => p.Text).HasMaxLength(8000).IsRequired();
            passage.Property(p => p.EmbeddingModel).HasMaxLength(200).IsRequired();
            passage.HasIndex(p => new { p.UserId, p.CreatedAt });
            passage.HasOne<AppUser>().WithMany().HasForeignKey(p => p.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<GraphEntity>(entity =>
        {
            entity.ToTable("graph_entities");
            entity.HasKey(e => e.Id);
            entity.Property(e => e.Name).HasMaxLength(GraphLimits.NameLength).IsRequired();
            entity.Property(e => e.NormalizedName).HasMaxLength(GraphLimits.NameLength).IsRequired();
            entity.Property(e => e.Type).HasMaxLength(32).IsRequired();
            entity.HasIndex(e => new { e.OwnerId, e.NormalizedName, e.Type }).IsUnique();
            entity.HasOne<AppUser>().WithMany().HasForeignKey(e => e.OwnerId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<GraphMention>(mention =>
        {
            mention.ToTable("graph_mentions");
            mention.HasKey(m => m.Id);
            mention.HasIndex(m => m.EntityId);
            mention.HasIndex(m => m.DocumentId);
            mention.HasOne<GraphEntity>().WithMany().HasForeignKey(m => m.EntityId).OnDelete(DeleteBehavior.Cascade);
            mention.HasOne<KnowledgeDocument>().WithMany().HasForeignKey(m => m.DocumentId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<GraphEdge>(edge =>
        {
            edge.ToTable("graph_edges");
            edge.HasKey(e => e.Id);
            edge.Property(e => e.Relation).HasMaxLength(GraphLimits.RelationLength).IsRequired();
            edge.HasIndex(e => e.SourceId);
            edge.HasIndex(e => e.TargetId);
            edge.HasIndex(e => e.DocumentId);
            edge.HasOne<GraphEntity>().WithMany().HasForeignKey(e => e.SourceId).OnDelete(DeleteBehavior.Cascade);
            edge.HasOne<GraphEntity>().WithMany().HasForeignKey(e => e.TargetId).OnDelete(DeleteBehavior.Cascade);
            edge.HasOne<KnowledgeDocument>().WithMany().HasForeignKey(e => e.DocumentId).OnDelete(DeleteBehavior.Cascade);
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

        builder.Entity<VectorCollection>(collection =>
        {
            collection.ToTable("vector_collections");
            collection.HasKey(c => c.Id);
            collection.Property(c => c.Name).HasMaxLength(VectorLimits.NameLength).IsRequired();
            collection.HasIndex(c => new { c.OwnerId, c.Name }).IsUnique();
            collection.HasOne<AppUser>().WithMany().HasForeignKey(c => c.OwnerId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<VectorPoint>(point =>
        {
            point.ToTable("vector_points");
            point.HasKey(p => p.Id);
            point.Property(p => p.PointId).HasMaxLength(VectorLimits.PointIdLength).IsRequired();
            point.Property(p => p.Vector).IsRequired();
            point.Property(p => p.Metadata).IsRequired();
            point.HasIndex(p => new { p.CollectionId, p.PointId }).IsUnique();
            point.HasOne<VectorCollection>().WithMany().HasForeignKey(p => p.CollectionId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<VectorPointTag>(tag =>
        {
            tag.ToTable("vector_point_tags");
            tag.HasKey(t => new { t.PointId, t.Key });
            tag.Property(t => t.Key).HasMaxLength(VectorLimits.TagKeyLength);
            tag.Property(t => t.Value).HasMaxLength(VectorLimits.TagValueLength).IsRequired();
            tag.HasIndex(t => new { t.Key, t.Value });
            tag.HasOne<VectorPoint>().WithMany().HasForeignKey(t => t.PointId).OnDelete(DeleteBehavior.Cascade);
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
