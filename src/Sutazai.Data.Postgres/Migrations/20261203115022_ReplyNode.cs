using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sutazai.Data.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ReplyNode : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "GeneratingNode",
                table: "messages",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "GeneratingNode",
                table: "messages");
        }
    }
}
