using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sutazai.Data.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class MessageCitations : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Citations",
                table: "messages",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Citations",
                table: "messages");
        }
    }
}
