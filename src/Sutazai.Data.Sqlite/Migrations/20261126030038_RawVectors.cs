using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sutazai.Data.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class RawVectors : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "vector_collections",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    OwnerId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    Dimensions = table.Column<int>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_vector_collections", x => x.Id);
                    table.ForeignKey(
                        name: "FK_vector_collections_users_OwnerId",
                        column: x => x.OwnerId,
                        principalTable: "users",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "vector_points",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    CollectionId = table.Column<Guid>(type: "TEXT", nullable: false),
                    PointId = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    Vector = table.Column<byte[]>(type: "BLOB", nullable: false),
                    Metadata = table.Column<string>(type: "TEXT", nullable: false),
                    UpdatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_vector_points", x => x.Id);
                    table.ForeignKey(
                        name: "FK_vector_points_vector_collections_CollectionId",
                        column: x => x.CollectionId,
                        principalTable: "vector_collections",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "vector_point_tags",
                columns: table => new
                {
                    PointId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Key = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    Value = table.Column<string>(type: "TEXT", maxLength: 500, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_vector_point_tags", x => new { x.PointId, x.Key });
                    table.ForeignKey(
                        name: "FK_vector_point_tags_vector_points_PointId",
                        column: x => x.PointId,
                        principalTable: "vector_points",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_vector_collections_OwnerId_Name",
                table: "vector_collections",
                columns: new[] { "OwnerId", "Name" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_vector_point_tags_Key_Value",
                table: "vector_point_tags",
                columns: new[] { "Key", "Value" });

            migrationBuilder.CreateIndex(
                name: "IX_vector_points_CollectionId_PointId",
                table: "vector_points",
                columns: new[] { "CollectionId", "PointId" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "vector_point_tags");

            migrationBuilder.DropTable(
                name: "vector_points");

            migrationBuilder.DropTable(
                name: "vector_collections");
        }
    }
}
