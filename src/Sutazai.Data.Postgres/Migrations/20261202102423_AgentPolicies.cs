using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sutazai.Data.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class AgentPolicies : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_agent_approvals_RunId_CallId",
                table: "agent_approvals");

            migrationBuilder.AddColumn<bool>(
                name: "AllUsers",
                table: "mcp_servers",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<string>(
                name: "EditedRisk",
                table: "agent_approvals",
                type: "character varying(8)",
                maxLength: 8,
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "Round",
                table: "agent_approvals",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.CreateTable(
                name: "mcp_server_users",
                columns: table => new
                {
                    ServerId = table.Column<Guid>(type: "uuid", nullable: false),
                    UserId = table.Column<Guid>(type: "uuid", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_mcp_server_users", x => new { x.ServerId, x.UserId });
                    table.ForeignKey(
                        name: "FK_mcp_server_users_mcp_servers_ServerId",
                        column: x => x.ServerId,
                        principalTable: "mcp_servers",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "FK_mcp_server_users_users_UserId",
                        column: x => x.UserId,
                        principalTable: "users",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_agent_approvals_RunId_CallId_Round",
                table: "agent_approvals",
                columns: new[] { "RunId", "CallId", "Round" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_mcp_server_users_UserId",
                table: "mcp_server_users",
                column: "UserId");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "mcp_server_users");

            migrationBuilder.DropIndex(
                name: "IX_agent_approvals_RunId_CallId_Round",
                table: "agent_approvals");

            migrationBuilder.DropColumn(
                name: "AllUsers",
                table: "mcp_servers");

            migrationBuilder.DropColumn(
                name: "EditedRisk",
                table: "agent_approvals");

            migrationBuilder.DropColumn(
                name: "Round",
                table: "agent_approvals");

            migrationBuilder.CreateIndex(
                name: "IX_agent_approvals_RunId_CallId",
                table: "agent_approvals",
                columns: new[] { "RunId", "CallId" },
                unique: true);
        }
    }
}
