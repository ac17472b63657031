using Sutazai.Agents.Tools;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

public sealed class CalculatorToolTests
{
    private static readonly AgentTool Tool = ToolHarness.Tool(new CalculatorToolProvider(), Context("/tmp"), "calculator_evaluate");

    [Theory]
    [InlineData("1 + 2 * 3", "7")]
    [InlineData("(1 + 2) * 3", "9")]
    [InlineData("0.1 + 0.2", "0.3")]
    [InlineData("1.10 * 3", "3.3")]
    [InlineData("10 / 4", "2.5")]
    [InlineData("1 / 3", "0.3333333333333333333333333333")]
    [InlineData("17 % 5", "2")]
    [InlineData("-7 % 3", "-1")]
    [InlineData("2 ^ 10", "1024")]
    [InlineData("2 ** 3 ** 2", "512")]
    [InlineData("2 ^ -2", "0.25")]
    [InlineData("-2 ^ 2", "-4")]
    [InlineData("(-2) ^ 2", "4")]
    [InlineData("--3", "3")]
    [InlineData("-(4 - 6) * +2", "4")]
    [InlineData("2 ^ 0.5", "1.4142135623730951")]
    [InlineData("sqrt(16)", "4")]
    [InlineData("sqrt(2)", "1.4142135623730951")]
    [InlineData("abs(-3.25)", "3.25")]
    [InlineData("round(2.5)", "3")]
    [InlineData("round(-2.5)", "-3")]
    [InlineData("round(3.14159, 2)", "3.14")]
    [InlineData("floor(-1.5) + ceil(1.2)", "0")]
    [InlineData("min(3, -1, 2) + max(1, 7, 4)", "6")]
    [InlineData("ln(e)", "1")]
    [InlineData("log10(1000)", "3")]
    [InlineData("sin(0) + cos(0)", "1")]
    [InlineData("round(tan(pi / 4), 10)", "1")]
    [InlineData("pi", "3.141592653589793")]
    [InlineData("1e3 + 2.5E-1", "1000.25")]
    [InlineData(".5 * 4", "2")]
    [InlineData("79228162514264337593543950335 + 1", "7.922816251426434E+28")]
    [InlineData("123456789012345678 * 1000000000", "123456789012345678000000000")]
    [InlineData("  ( 2 )  ", "2")]
    public async Task Evaluate_ComputesPrecisely(string expression, string expected)
    {
        var result = await InvokeAsync<CalculatorResult>(Tool, new { expression });
        Assert.Equal(expected, result.Result);
        Assert.Equal(expression, result.Expression);
    }

    [Fact]
    public async Task Evaluate_ReportsWhetherTheResultIsExact()
    {
        var exact = await InvokeAsync<CalculatorResult>(Tool, new { expression = "0.1 + 0.2" });
        Assert.True(exact.Exact);
        Assert.Equal(0.3, exact.Value);
        var approximate = await InvokeAsync<CalculatorResult>(Tool, new { expression = "sqrt(2)" });
        Assert.False(approximate.Exact);
        Assert.Equal(Math.Sqrt(2), approximate.Value);
    }

    [Theory]
    [InlineData("1 +", "The expression ends early; expected a number, name or '(' at position 4 of the expression.")]
    [InlineData("2 * (3 + 4", "Missing ')' for the '(' at position 5 at position 11 of the expression.")]
    [InlineData("2 3", "Unexpected '3' at position 3 of the expression.")]
    [InlineData("4 / (2 - 2)", "Division by zero at position 3 of the expression.")]
    [InlineData("5 % 0", "Modulo by zero at position 3 of the expression.")]
    [InlineData("foo(2)", "Unknown function 'foo'; available: sqrt, abs, round, floor, ceil, min, max, ln, log10, sin, cos, tan at position 1 of the expression.")]
    [InlineData("2 * x", "Unknown name 'x'; the constants are pi and e at position 5 of the expression.")]
    [InlineData("sqrt(-1)", "sqrt of a negative number is not a real number at position 1 of the expression.")]
    [InlineData("ln(0)", "ln is defined only for positive numbers at position 1 of the expression.")]
    [InlineData("1 + # 2", "Expected a number, name or '(' but found '#' at position 5 of the expression.")]
    [InlineData("sqrt", "The function 'sqrt' needs arguments in parentheses at position 1 of the expression.")]
    [InlineData("sqrt(1, 2)", "sqrt takes 1 argument, not 2 at position 1 of the expression.")]
    [InlineData("min()", "min needs at least one argument at position 1 of the expression.")]
    [InlineData("(-8) ^ 0.5", "This power is not a real number (a negative base with a fractional exponent) at position 6 of the expression.")]
    [InlineData("10 ^ 400", "The result is too large to represent at position 4 of the expression.")]
    [InlineData("0 ^ -1", "0 cannot be raised to a negative power at position 3 of the expression.")]
    [InlineData("round(1.5, 0.5)", "round's second argument (digits) must be a whole number from 0 to 15 at position 1 of the expression.")]
    [InlineData("", "Give an expression, for example '(2 + 3) * 4'.")]
    public async Task Evaluate_ErrorsNameThePosition(string expression, string message)
    {
        var error = await FailsAsync(Tool, new { expression });
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public async Task Evaluate_RefusesDeepNestingAndLongInput()
    {
        var deep = await FailsAsync(Tool, new { expression = new string('(', 100) + "1" + new string(')', 100) });
        Assert.StartsWith("The expression nests deeper than 64 levels", deep.Message);
        var longOne = await FailsAsync(Tool, new { expression = string.Join("+", Enumerable.Repeat("1", 600)) });
        Assert.Equal("The expression is longer than 1000 characters.", longOne.Message);
    }

    [Fact]
    public void Tool_IsSideEffectFree() => Assert.False(Tool.SideEffects);
}
