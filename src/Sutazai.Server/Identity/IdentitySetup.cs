using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Configuration;
using Sutazai.Server.Identity.Mail;

namespace Sutazai.Server.Identity;

public static class IdentitySetup
{
    /// <summary>The admin routes: the admin role and, for an API key, the <c>admin</c> scope.</summary>
    public const string AdminPolicy = "admin";

    public static WebApplicationBuilder AddSutazaiIdentity(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        builder.AddSutazaiAccounts();
        services.AddScoped<CredentialValidator>();
        services.AddScoped<TokenAuthenticator>();

        // One default scheme that picks the handler: a bearer "sk-…" is an API key, any other bearer token a JWT, and
        // outside /api and /v1 a request without one uses the web UI's cookie (see CookieAuthentication.Select).
        services.AddAuthentication(ApiKeyAuthenticationHandler.SelectorScheme)
            .AddPolicyScheme(ApiKeyAuthenticationHandler.SelectorScheme, "JWT, API key or UI cookie", o => o.ForwardDefaultSelector = CookieAuthentication.Select)
            .AddJwtBearer()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddSutazaiCookie();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<JwtKeyStore, IOptions<AuthOptions>>((o, keys, authOptions) =>
            {
                var a = authOptions.Value;
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = a.Issuer,
                    ValidAudience = a.Audience,
                    IssuerSigningKey = keys.Key,
                    ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
                    ValidateIssuer = true,
                    ValidateAudience = true,
                    ValidateLifetime = true,
                    ValidateIssuerSigningKey = true,
                    RequireExpirationTime = true,
                    RequireSignedTokens = true,
                    ClockSkew = TimeSpan.FromSeconds(a.ClockSkewSeconds),
                    NameClaimType = "name",
                    RoleClaimType = "role",
                };
                o.Events = new JwtBearerEvents
                {
                    // Browsers cannot set headers on a WebSocket handshake: accept ?access_token= there only.
                    OnMessageReceived = ctx =>
                    {
                        if (ctx.Request.Path.StartsWithSegments("/ws") && ctx.Request.Query.TryGetValue("access_token", out var token))
                            ctx.Token = token.ToString();
                        return Task.CompletedTask;
                    },
                    OnTokenValidated = async ctx =>
                    {
                        var validator = ctx.HttpContext.RequestServices.GetRequiredService<CredentialValidator>();
                        var failure = await validator.ValidateAsync(ctx.Principal!, ctx.HttpContext.RequestAborted);
                        if (failure is not null) ctx.Fail(failure);
                    },
                };
            });
        services.AddAuthorizationBuilder()
            .SetDefaultPolicy(new Microsoft.AspNetCore.Authorization.AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build())
            .AddPolicy(AdminPolicy, p => p.RequireAuthenticatedUser().RequireRole(Roles.Admin).AddRequirements(new ScopeRequirement([ApiScopes.Admin])))
            .AddScopePolicies();
        // A missing scope answers 403 insufficient_scope (the OpenAI-compatible handler, registered later, wraps this one).
        services.AddSingleton<ScopeAuthorizationResultHandler>();
        services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler>(sp => sp.GetRequiredService<ScopeAuthorizationResultHandler>());
        return builder;
    }

    /// <summary>
    /// Accounts without the HTTP side: Identity's store and password rules, tokens, API keys, mail and the account
    /// services. The offline admin commands (<c>sutazai users …</c>) register only this, never the web host.
    /// </summary>
    /// <summary>
    /// Drops ASP.NET Core's start-up prefetch of the key ring (<c>DataProtectionHostedService</c>), which would read the
    /// database's key table before the warm-up has migrated it. Every later <c>AddDataProtection()</c> (antiforgery,
    /// authentication, Razor components) adds it again, so hosts call this once all services are registered.
    /// </summary>
    public static void RemoveKeyRingPrefetch(IServiceCollection services)
    {
        foreach (var prefetch in services.Where(d => d.ServiceType == typeof(IHostedService)
            && d.ImplementationType?.FullName == "Microsoft.AspNetCore.DataProtection.Internal.DataProtectionHostedService").ToList())
            services.Remove(prefetch);
    }

    public static WebApplicationBuilder AddSutazaiAccounts(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var auth = builder.Configuration.Read<AuthOptions>(AuthOptions.Section);
        var dataPath = builder.Configuration.Read<SutazaiOptions>(SutazaiOptions.Section).DataPath;

        // The key ring lives in the database, so a cookie or reset token made on one node opens on every other. It is
        // first read by the warm-up (after migrations), not by the framework's own start-up prefetch.
        services.AddDataProtection()
            .SetApplicationName("sutazai")
            .PersistKeysToDbContext<AppDbContext>();
        RemoveKeyRingPrefetch(services);
        services.AddSingleton<Hosting.IStartupStep>(sp => new DataProtectionKeyRing(sp, dataPath));

        services.AddIdentityCore<AppUser>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.User.AllowedUserNameCharacters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
                o.Password.RequiredLength = PasswordRules.MinLength;
                o.Password.RequireDigit = true;
                o.Password.RequireLowercase = true;
                o.Password.RequireUppercase = true;
                o.Password.RequireNonAlphanumeric = true;
                o.Password.RequiredUniqueChars = 1;
                o.Lockout.AllowedForNewUsers = true;
                o.Lockout.MaxFailedAccessAttempts = auth.MaxFailedAttempts;
                o.Lockout.DefaultLockoutTimeSpan = auth.LockoutDuration;
            })
            .AddEntityFrameworkStores<AppDbContext>()
            .AddDefaultTokenProviders()
            .AddPasswordValidator<PasswordRules>();
        services.Configure<DataProtectionTokenProviderOptions>(o => o.TokenLifespan = auth.PasswordResetTokenLifetime);

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<JwtKeyStore>();
        services.AddSingleton<Hosting.IStartupStep>(sp => sp.GetRequiredService<JwtKeyStore>());
        services.AddScoped<TokenService>();
        services.AddScoped<ApiKeyService>();
        services.AddScoped<AccountService>();
        services.AddScoped<UserAdministration>();
        services.AddSingleton<IMailSender>(sp =>
        {
            var mail = sp.GetRequiredService<IOptions<MailOptions>>().Value;
            return string.IsNullOrWhiteSpace(mail.SmtpHost)
                ? ActivatorUtilities.CreateInstance<OutboxMailSender>(sp)
                : ActivatorUtilities.CreateInstance<SmtpMailSender>(sp);
        });
        return builder;
    }
}
