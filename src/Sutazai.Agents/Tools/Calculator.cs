using System.Globalization;

namespace Sutazai.Agents.Tools;

public sealed record CalculatorResult(string Expression, string Result, double Value, bool Exact);

/// <summary>
/// A recursive-descent evaluator for arithmetic (never eval, compiled code or DataTable.Compute). Grammar, loosest
/// first: sum = product (("+" | "-") product)*; product = unary (("*" | "/" | "%") unary)*;
/// unary = ("-" | "+") unary | power; power = primary (("^" | "**") unary)? (right-associative, so -2^2 = -4 and
/// 2^3^2 = 512); primary = number | constant | function "(" sum ("," sum)* ")" | "(" sum ")".
/// Numbers stay exact decimals (28 significant digits, so 0.1 + 0.2 = 0.3) while + - * / % and integer powers allow it,
/// and become doubles for roots, logarithms, trigonometry, pi, e, fractional powers or decimal overflow.
/// </summary>
public sealed class Calculator
{
    public const int MaxLength = 1000;
    public const int MaxDepth = 64;

    private static readonly string[] Functions = ["sqrt", "abs", "round", "floor", "ceil", "min", "max", "ln", "log10", "sin", "cos", "tan"];

    private readonly string _text;
    private int _pos;
    private int _depth;

    private Calculator(string text) => _text = text;

    public static CalculatorResult Evaluate(string? expression)
    {
        if (string.IsNullOrWhiteSpace(expression)) throw new ToolException("Give an expression, for example '(2 + 3) * 4'.");
        if (expression.Length > MaxLength) throw new ToolException($"The expression is longer than {MaxLength} characters.");
        var parser = new Calculator(expression);
        var value = parser.Sum();
        parser.SkipSpace();
        if (parser._pos < expression.Length) throw parser.Error($"Unexpected '{expression[parser._pos]}'", parser._pos);
        return value.Exact
            ? new CalculatorResult(expression, Format(value.Decimal), (double)value.Decimal, true)
            : new CalculatorResult(expression, value.Double.ToString("R", CultureInfo.InvariantCulture), value.Double, false);
    }

    private readonly record struct Number(bool Exact, decimal Decimal, double Double)
    {
        public static Number Of(decimal value) => new(true, value, (double)value);

        public static Number Of(double value) => new(false, 0, value);

        public double AsDouble => Exact ? (double)Decimal : Double;
    }

    private Number Sum()
    {
        var left = Product();
        while (true)
        {
            SkipSpace();
            if (!TryTake('+', out var at) && !TryTake('-', out at)) return left;
            var right = Product();
            left = _text[at] == '+'
                ? Exact(left, right, (a, b) => a + b, (a, b) => a + b, at)
                : Exact(left, right, (a, b) => a - b, (a, b) => a - b, at);
        }
    }

    private Number Product()
    {
        var left = Unary();
        while (true)
        {
            SkipSpace();
            if (_pos + 1 < _text.Length && _text[_pos] == '*' && _text[_pos + 1] == '*') return left; // a power, handled below
            if (!TryTake('*', out var at) && !TryTake('/', out at) && !TryTake('%', out at)) return left;
            var right = Unary();
            var op = _text[at];
            if (op is '/' or '%' && right.AsDouble == 0 && (!right.Exact || right.Decimal == 0))
                throw Error(op == '/' ? "Division by zero" : "Modulo by zero", at);
            left = op switch
            {
                '*' => Exact(left, right, (a, b) => a * b, (a, b) => a * b, at),
                '/' => Exact(left, right, (a, b) => a / b, (a, b) => a / b, at),
                _ => Exact(left, right, (a, b) => a % b, (a, b) => a % b, at),
            };
        }
    }

    private Number Unary()
    {
        SkipSpace();
        if (TryTake('-', out _)) return Nested(() => Negate(Unary()));
        if (TryTake('+', out _)) return Nested(Unary);
        return Power();
    }

    private Number Power()
    {
        var left = Primary();
        SkipSpace();
        int at;
        if (_pos + 1 < _text.Length && _text[_pos] == '*' && _text[_pos + 1] == '*')
        {
            at = _pos;
            _pos += 2;
        }
        else if (!TryTake('^', out at))
        {
            return left;
        }
        var right = Nested(Unary);
        return Pow(left, right, at);
    }

    private Number Primary()
    {
        SkipSpace();
        if (_pos >= _text.Length) throw Error("The expression ends early; expected a number, name or '('", _pos);
        var c = _text[_pos];
        if (c == '(')
        {
            var open = _pos++;
            var inner = Nested(Sum);
            SkipSpace();
            if (!TryTake(')', out _)) throw Error($"Missing ')' for the '(' at position {open + 1}", _pos);
            return inner;
        }
        if (char.IsAsciiDigit(c) || c == '.') return NumberLiteral();
        if (char.IsAsciiLetter(c)) return Name();
        throw Error($"Expected a number, name or '(' but found '{c}'", _pos);
    }

    private Number NumberLiteral()
    {
        var start = _pos;
        while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos])) _pos++;
        if (_pos < _text.Length && _text[_pos] == '.')
        {
            _pos++;
            while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos])) _pos++;
        }
        if (_pos < _text.Length && _text[_pos] is 'e' or 'E')
        {
            var exponent = _pos + 1;
            if (exponent < _text.Length && _text[exponent] is '+' or '-') exponent++;
            if (exponent < _text.Length && char.IsAsciiDigit(_text[exponent]))
            {
                _pos = exponent;
                while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos])) _pos++;
            }
        }
        var literal = _text[start.._pos];
        if (literal == ".") throw Error("Expected a number but found '.'", start);
        if (decimal.TryParse(literal, NumberStyles.Float, CultureInfo.InvariantCulture, out var exact)) return Number.Of(exact);
        if (double.TryParse(literal, NumberStyles.Float, CultureInfo.InvariantCulture, out var approximate) && double.IsFinite(approximate)) return Number.Of(approximate);
        throw Error($"The number '{literal}' is too large", start);
    }

    private Number Name()
    {
        var start = _pos;
        while (_pos < _text.Length && (char.IsAsciiLetterOrDigit(_text[_pos]) || _text[_pos] == '_')) _pos++;
        var name = _text[start.._pos].ToLowerInvariant();
        SkipSpace();
        if (_pos >= _text.Length || _text[_pos] != '(')
        {
            return name switch
            {
                "pi" => Number.Of(Math.PI),
                "e" => Number.Of(Math.E),
                _ when Functions.Contains(name) => throw Error($"The function '{name}' needs arguments in parentheses", start),
                _ => throw Error($"Unknown name '{name}'; the constants are pi and e", start),
            };
        }
        if (!Functions.Contains(name)) throw Error($"Unknown function '{name}'; available: {string.Join(", ", Functions)}", start);
        _pos++;
        var args = new List<Number>();
        SkipSpace();
        if (!TryTake(')', out _))
        {
            while (true)
            {
                args.Add(Nested(Sum));
                SkipSpace();
                if (TryTake(')', out _)) break;
                if (!TryTake(',', out _)) throw Error($"Expected ',' or ')' in the arguments of {name}", _pos);
            }
        }
        return Call(name, args, start);
    }

    private Number Call(string name, List<Number> args, int at)
    {
        void Arity(int min, int max)
        {
            if (args.Count < min || args.Count > max)
                throw Error(min == max ? $"{name} takes {min} argument{(min == 1 ? "" : "s")}, not {args.Count}" : $"{name} takes {min} to {max} arguments, not {args.Count}", at);
        }

        switch (name)
        {
            case "min" or "max":
                if (args.Count == 0) throw Error($"{name} needs at least one argument", at);
                var best = args[0];
                foreach (var a in args.Skip(1))
                    if (name == "min" ? a.AsDouble < best.AsDouble || Both(a, best) && a.Decimal < best.Decimal : a.AsDouble > best.AsDouble || Both(a, best) && a.Decimal > best.Decimal)
                        best = a;
                return best;
            case "round":
                Arity(1, 2);
                var digits = 0;
                if (args.Count == 2)
                {
                    var d = args[1].AsDouble;
                    if (d != Math.Floor(d) || d < 0 || d > 15) throw Error("round's second argument (digits) must be a whole number from 0 to 15", at);
                    digits = (int)d;
                }
                return args[0].Exact
                    ? Number.Of(Math.Round(args[0].Decimal, digits, MidpointRounding.AwayFromZero))
                    : Number.Of(Math.Round(args[0].Double, digits, MidpointRounding.AwayFromZero));
        }

        Arity(1, 1);
        var x = args[0];
        switch (name)
        {
            case "abs": return x.Exact ? Number.Of(Math.Abs(x.Decimal)) : Number.Of(Math.Abs(x.Double));
            case "floor": return x.Exact ? Number.Of(Math.Floor(x.Decimal)) : Number.Of(Math.Floor(x.Double));
            case "ceil": return x.Exact ? Number.Of(Math.Ceiling(x.Decimal)) : Number.Of(Math.Ceiling(x.Double));
        }
        var v = x.AsDouble;
        return name switch
        {
            "sqrt" when v < 0 => throw Error("sqrt of a negative number is not a real number", at),
            "ln" or "log10" when v <= 0 => throw Error($"{name} is defined only for positive numbers", at),
            "sqrt" => Finite(Math.Sqrt(v), at),
            "ln" => Finite(Math.Log(v), at),
            "log10" => Finite(Math.Log10(v), at),
            "sin" => Finite(Math.Sin(v), at),
            "cos" => Finite(Math.Cos(v), at),
            _ => Finite(Math.Tan(v), at),
        };
    }

    private static bool Both(Number a, Number b) => a.Exact && b.Exact;

    private Number Pow(Number x, Number y, int at)
    {
        if (x.Exact && y.Exact && y.Decimal == Math.Truncate(y.Decimal) && Math.Abs(y.Decimal) <= 10_000)
        {
            if (x.Decimal == 0 && y.Decimal < 0) throw Error("0 cannot be raised to a negative power", at);
            try
            {
                var result = 1m;
                var power = x.Decimal;
                for (var n = (long)Math.Abs(y.Decimal); n > 0; n >>= 1)
                {
                    if ((n & 1) == 1) result *= power;
                    if (n > 1) power *= power;
                }
                var exact = y.Decimal < 0 ? 1m / result : result;
                // Underflow below decimal's 28 places would silently give 0; doubles keep the magnitude.
                if (exact != 0 || x.Decimal == 0) return Number.Of(exact);
            }
            catch (OverflowException)
            {
                // Beyond decimal's range: fall back to double below.
            }
        }
        var value = Math.Pow(x.AsDouble, y.AsDouble);
        if (double.IsNaN(value)) throw Error("This power is not a real number (a negative base with a fractional exponent)", at);
        return Finite(value, at);
    }

    private Number Exact(Number a, Number b, Func<decimal, decimal, decimal> exact, Func<double, double, double> approximate, int at)
    {
        if (Both(a, b))
        {
            try
            {
                return Number.Of(exact(a.Decimal, b.Decimal));
            }
            catch (OverflowException)
            {
                // Beyond decimal's range: fall back to double below.
            }
        }
        return Finite(approximate(a.AsDouble, b.AsDouble), at);
    }

    private static Number Negate(Number x) => x.Exact ? Number.Of(-x.Decimal) : Number.Of(-x.Double);

    private Number Finite(double value, int at) =>
        double.IsFinite(value) ? Number.Of(value) : throw Error("The result is too large to represent", at);

    private Number Nested(Func<Number> parse)
    {
        if (++_depth > MaxDepth) throw Error($"The expression nests deeper than {MaxDepth} levels", _pos);
        try
        {
            return parse();
        }
        finally
        {
            _depth--;
        }
    }

    private bool TryTake(char c, out int at)
    {
        at = _pos;
        if (_pos >= _text.Length || _text[_pos] != c) return false;
        _pos++;
        return true;
    }

    private void SkipSpace()
    {
        while (_pos < _text.Length && char.IsWhiteSpace(_text[_pos])) _pos++;
    }

    /// <summary>An error naming the 1-based position in the expression.</summary>
    private ToolException Error(string message, int index) => new($"{message} at position {index + 1} of the expression.");

    private static string Format(decimal value) =>
        (value / 1.0000000000000000000000000000m).ToString(CultureInfo.InvariantCulture);
}
